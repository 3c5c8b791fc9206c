"""``python -m roomcast``: the same as the ``roomcast`` command."""

from roomcast.cli import main

main()
