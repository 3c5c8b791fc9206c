"""Tests of the HTTP server API (``roomcast.api``), one module per module of the package."""
