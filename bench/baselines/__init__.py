"""The three baseline servers, each the idiomatic minimal broadcast of its library.

Each speaks the same tiny contract so one load client fits all (see :mod:`bench.dialects`):
subscribers connect and are told ``ok`` once they are in the broadcast set; a publisher (a
WebSocket, or an HTTP ``POST /publish`` where the stack has HTTP) hands over one JSON text per
publication, which the server broadcasts unchanged.
"""

__all__: list[str] = []
