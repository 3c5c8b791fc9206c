"""The standalone server: what ``roomcast serve`` needs and an embedding app does not.

:mod:`.cli` (the ``roomcast`` command), :mod:`.app` (the ASGI app each worker runs),
:mod:`.log_config` (one log format for roomcast and uvicorn), :mod:`.gc_tuning` (the garbage
collector tuned for many long-lived connections), and :mod:`.seeds` (the seed endpoints and
their chat page).
"""

__all__: list[str] = []
