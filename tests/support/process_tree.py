"""Which process serves a TCP connection, read from Linux's ``/proc``: for tests of servers that
run several worker processes behind one listening socket (``roomcast serve --workers N``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["children", "connection_open", "serving_process"]

_PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``, in PID order."""
    found = []
    for stat in _PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The command name, in parentheses, may hold spaces: the fields follow its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return sorted(found)


def serving_process(candidates: list[int], server_port: int, client_port: int) -> int | None:
    """Which of ``candidates`` holds the server's end of the IPv4 connection from
    127.0.0.1:``client_port`` to 127.0.0.1:``server_port``; None if none does (yet)."""
    inode = _socket_inode(server_port, client_port)
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in os.listdir(_PROC / str(pid) / "fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(_PROC / str(pid) / "fd" / fd) == link:
                        return pid
    return None


def connection_open(server_port: int, client_port: int) -> bool:
    """Whether a process still holds the server's end of the connection from
    127.0.0.1:``client_port`` to 127.0.0.1:``server_port`` (it has not closed or aborted it;
    a socket the kernel still flushes after its process let go has inode 0)."""
    return _socket_inode(server_port, client_port) not in (None, "0")


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the socket bound to ``local_port`` and connected to ``remote_port``."""
    lines = (_PROC / "net" / "tcp").read_text().splitlines()[1:]
    for line in lines:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == (
            remote_port
        ):
            return inode
    return None
