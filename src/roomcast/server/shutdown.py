"""How ``roomcast serve`` stops: a drain on the first SIGTERM or Ctrl-C, at once on the second.

On the first signal, in the signal handler itself, the hub's drain begins: ``/readyz``
answers 503 from that instant and new WebSocket handshakes are refused with HTTP 503
(:class:`DrainGate`), while HTTP keeps being served, so a load balancer sees the node go
unready and the probes still get their answer. Then the drain closes the clients in batches
over ``shutdown.timeout`` (:mod:`roomcast.session.drain`), and only when it is over does
uvicorn's own shutdown run: the listening socket closes, what is left (plain WebSockets, HTTP
keep-alives) is closed with 1001, the hub stops. A second signal closes every client left at
once and lets that shutdown start; a third is uvicorn's (a third Ctrl-C quits without waiting).

The handlers wrap uvicorn's: :class:`GracefulShutdown` is installed from the app's lifespan,
when uvicorn's handlers are in place, and hands the first signal to uvicorn's own handler once
the drain is over, so the process exits as uvicorn makes it (re-raising that signal: 130 for
SIGINT, 143 for SIGTERM).

With ``--workers N`` the workers do not act on SIGINT: a Ctrl-C reaches the whole process
group, and :class:`DrainingMultiprocess`, uvicorn's supervisor, passes every SIGINT or SIGTERM
it gets on to each worker as SIGTERM at once, so each worker drains on the first and stops at
once on the second, however the signal was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from socket import socket
from types import FrameType
from typing import Any, Final

import uvicorn
from uvicorn.supervisors import Multiprocess

from roomcast.session.drain import DRAINING, Drain, DrainState
from roomcast.transport.asgi import refuse_handshake

__all__ = ["STOP_SIGNALS", "DrainGate", "DrainingMultiprocess", "GracefulShutdown"]

logger = logging.getLogger("roomcast.server")

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop ``roomcast serve``."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SignalHandler = Callable[[int, FrameType | None], Any]


class DrainGate:
    """ASGI app: while ``drain`` is not serving, every WebSocket handshake, whatever its path,
    is refused with HTTP 503 and ``Retry-After: 1``; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.drain.state is not DrainState.SERVING:
            await refuse_handshake(scope, receive, send, 503, DRAINING, retry_after=1)
            return
        await self.app(scope, receive, send)


class GracefulShutdown:
    """The stop signals of one worker, wrapped around uvicorn's handlers (module docstring).

    Args:
        drain: the hub's drain.
        supervised: the worker is one of ``--workers N``: SIGINT is left to the supervisor,
            which passes it on as SIGTERM.
    """

    def __init__(self, drain: Drain, *, supervised: bool) -> None:
        self._drain = drain
        self._supervised = supervised
        self._server_handlers: dict[int, SignalHandler] = {}
        self._first: int | None = None
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        """Wrap the server's handlers of the stop signals; call from the running event loop's
        (main) thread once the server has installed them. False, changing nothing, when a
        stop signal has no handler of the server's to wrap (the app runs without one)."""
        handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        if not all(callable(handler) for handler in handlers.values()):
            logger.debug("no server signal handlers to wrap: stop signals left as they are")
            return False
        self._loop = asyncio.get_running_loop()
        for sig, handler in handlers.items():
            assert callable(handler)
            self._server_handlers[sig] = handler
            signal.signal(sig, self._on_signal)
        return True

    @property
    def signals(self) -> int:
        """Stop signals acted on so far."""
        return self._signals

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._supervised and sig == signal.SIGINT:
            return  # the supervisor passes it on as SIGTERM
        loop = self._loop
        assert loop is not None
        self._signals += 1
        if self._first is None:
            self._first = sig
            self._drain.begin()  # before anything else: readiness fails from this instant
            loop.call_soon_threadsafe(self._start_drain)
        elif self._signals == 2:
            loop.call_soon_threadsafe(self._drain.hurry)
        else:
            self._server_handlers[sig](sig, frame)

    def _start_drain(self) -> None:
        assert self._loop is not None
        self._task = self._loop.create_task(self._drain_then_stop())

    async def _drain_then_stop(self) -> None:
        try:
            await self._drain.run()
        except Exception:
            logger.exception("the drain failed; stopping without it")
        finally:
            first = self._first
            assert first is not None
            self._server_handlers[first](first, None)


class DrainingMultiprocess(Multiprocess):
    """uvicorn's supervisor of ``--workers N``, passing each SIGINT or SIGTERM it gets on to
    every worker at once as SIGTERM (the first drains them, the second stops them at once),
    and then waiting for them to exit by themselves instead of terminating them again."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        self._passed_on = 0
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signal_queue.append(sig)  # uvicorn's loop then stops supervising
        self._passed_on += 1
        for process in self.processes:
            pid = process.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):  # that worker has exited already
                    os.kill(pid, signal.SIGTERM)

    def terminate_all(self) -> None:
        if self._passed_on:
            return  # every worker was told and is draining; join_all waits for it to exit
        super().terminate_all()
