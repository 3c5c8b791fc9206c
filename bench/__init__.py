"""roomcast's side-by-side benchmark: roomcast against three well-known Python baselines.

Run it as ``python -m bench``; :func:`bench.cli.main` is the entry point (``roomcast bench``
calls it too). See ``bench/README.md`` for the layout and the meaning of each figure.
"""

__all__: list[str] = []
