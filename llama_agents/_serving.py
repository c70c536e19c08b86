"""Serving a FastAPI app with uvicorn inside an existing event loop.

Every served part of llama-agents (the embedded queue, the control plane, services) runs
through this, so they all report their bound port the same way and can be stopped from code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from llama_agents.errors import ConfigurationError
from llama_agents.logs import is_configured


class _Server(uvicorn.Server):
    """A uvicorn server that reports its bound port and leaves signals to its owner."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[int], None] | None,
        handle_signals: bool,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._handle_signals = handle_signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            port = self.config.port
            for server in self.servers:
                for sock in server.sockets:
                    port = int(sock.getsockname()[1])
                    break
            self._on_started(port)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield


def _listening_socket(family: int, address: Any) -> socket.socket:
    """A TCP listening socket whose protocol says TCP: asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on sockets created with IPPROTO_TCP, and accepted sockets inherit it.
    With Nagle on, each small response waits ~40 ms for the client's delayed ACK."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """One FastAPI app served on `host:port`; `port=0` picks a free port."""

    def __init__(self, app: Any, *, host: str, port: int, handle_signals: bool = False) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.handle_signals = handle_signals
        self._server: _Server | None = None
        self._started = asyncio.Event()

    async def serve(self, on_started: Callable[[int], None] | None = None) -> None:
        """Serve until `stop()` is called or the task is cancelled."""

        def started(port: int) -> None:
            self.port = port
            self._started.set()
            if on_started is not None:
                on_started(port)

        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            # Once the process's logging is set up (JSON lines, say), uvicorn's lines go
            # through it rather than through uvicorn's own text handlers.
            log_config=None if is_configured() else uvicorn.config.LOGGING_CONFIG,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        listening = await self._listen()
        self._server = _Server(config, started, self.handle_signals)
        try:
            await self._server.serve(sockets=[listening])
        finally:
            self._started.clear()
            listening.close()  # a no-op once the server closed it; else it is not leaked

    async def _listen(self) -> socket.socket:
        """The listening socket, bound here so that a port in use is our error, not uvicorn's
        log line and `sys.exit(3)` from inside the event loop."""
        try:
            addresses = await asyncio.get_running_loop().getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, address = addresses[0]
            return _listening_socket(family, address)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port}: {reason}") from exc

    async def wait_started(self, timeout: float = 10.0) -> int:
        """Wait until the server accepts connections; return its port."""
        async with asyncio.timeout(timeout):
            await self._started.wait()
        return self.port

    def stop(self) -> None:
        """Ask the server to finish its open requests and exit."""
        if self._server is not None:
            self._server.should_exit = True
