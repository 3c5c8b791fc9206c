"""``python -m roomcast``: the same as the ``roomcast`` command."""

from roomcast.server.cli import main

main()
