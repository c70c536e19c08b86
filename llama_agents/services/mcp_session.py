"""One MCP client session kept open to one MCP server, and opened again when it drops.

A tool service serving an MCP server's tools holds one session for all its calls (not one per
call: a stdio server is a process, and starting one per call is slow and loses its state).
The session lives in a task of its own, because the SDK's transports are anyio context
managers that must be entered and left by one task; calls from any task use it meanwhile.

When the session breaks (the stdio server died, the HTTP server restarted and forgot it), the
call that found it broken opens a new one (with bounded backoff) and is sent again once; a
server that stays down makes the call fail with `McpServerUnavailableError`, never hang.
Sending again after a break can run a tool twice if the server ran it and died before
answering, as with any at-least-once delivery.

The MCP SDK is imported only when a session opens (`pip install 'llama-agents[mcp]'`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from llama_agents._retry import with_backoff
from llama_agents.errors import (
    ConfigurationError,
    McpServerUnavailableError,
    McpSessionLostError,
)

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult, ListToolsResult

logger = logging.getLogger("llama_agents.services.mcp")

T = TypeVar("T")

INSTALL_HINT = "pip install 'llama-agents[mcp]'"

#: Seconds an opening session may take to answer `initialize`.
CONNECT_TIMEOUT = 30.0
#: Seconds a session's task gets to shut its transport down (the SDK bounds stdio's at ~6).
CLOSE_TIMEOUT = 15.0
#: Seconds a ping may take when a failed call makes us ask whether the session still lives.
PING_TIMEOUT = 5.0


def require_mcp_sdk() -> None:
    """Raise a clear `ConfigurationError` when the MCP extra is not installed."""
    try:
        import llama_index.tools.mcp  # type: ignore[import-untyped]  # noqa: F401
        import mcp  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"MCP support needs the MCP SDK and llama-index-tools-mcp: {INSTALL_HINT} ({exc})"
        ) from exc


@dataclass(frozen=True)
class McpStdioServer:
    """An MCP server the SDK starts as a subprocess and talks to over stdin/stdout.

    The subprocess inherits only a few safe variables (PATH, HOME, ...) from this process, as
    the SDK does by default; give it more in `env`.
    """

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None

    def __str__(self) -> str:
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class McpHttpServer:
    """An MCP server reached over streamable HTTP at `url`, with `headers` on each request."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.url


McpServer = McpStdioServer | McpHttpServer


def mcp_server(
    server: str | Sequence[str] | McpServer, headers: Mapping[str, str] | None = None
) -> McpServer:
    """What `from_mcp` takes, as a server description: a URL, an argv list, or a model."""
    if isinstance(server, McpStdioServer | McpHttpServer):
        if headers and isinstance(server, McpHttpServer):
            return McpHttpServer(server.url, {**server.headers, **headers})
        if headers:
            raise ConfigurationError("headers are for MCP servers reached over HTTP")
        return server
    if isinstance(server, str):
        if server.startswith(("http://", "https://")):
            return McpHttpServer(server, dict(headers or {}))
        raise ConfigurationError(
            f"an MCP server is an http(s):// URL, a command as a list of arguments, or an "
            f"McpStdioServer; got {server!r}"
        )
    argv = list(server)
    if not argv or not all(isinstance(arg, str) and arg for arg in argv):
        raise ConfigurationError(f"an MCP server command is a non-empty list of strings: {argv}")
    if headers:
        raise ConfigurationError("headers are for MCP servers reached over HTTP")
    return McpStdioServer(argv[0], tuple(argv[1:]))


@dataclass(eq=False)
class _Live:
    """One open session and the task holding it."""

    session: ClientSession
    holder: asyncio.Task[None]
    stop: asyncio.Event
    lost: asyncio.Event


class McpSession:
    """A kept-open session with `server`; `open()` it, use it, `close()` it.

    Args:
        call_timeout: seconds one request may take (None: no limit).
        reconnect_timeout: seconds to keep trying to open a new session after one dropped,
            before the call fails.
    """

    def __init__(
        self,
        server: McpServer,
        *,
        call_timeout: float | None = 60.0,
        reconnect_timeout: float = 10.0,
    ) -> None:
        limits = {"call_timeout": call_timeout, "reconnect_timeout": reconnect_timeout}
        for name, value in limits.items():
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        self.server = server
        self.call_timeout = call_timeout
        self.reconnect_timeout = reconnect_timeout
        #: How many sessions were opened so far (1 while the first one holds).
        self.sessions_opened = 0
        #: What the server says about itself (`initialize`'s instructions), once open.
        self.instructions: str | None = None
        self._live: _Live | None = None
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._live is not None and not self._live.lost.is_set()

    async def open(self, timeout: float | None = None) -> None:
        """Open the session (if it is not open), trying for `timeout` seconds (default:
        `reconnect_timeout`): at start-up the server may still be starting."""
        await self._current(None, timeout)

    async def close(self) -> None:
        """Close the session (a stdio server's process ends with it)."""
        async with self._lock:
            live, self._live = self._live, None
        if live is not None:
            await _finish(live)

    async def list_tools(self) -> ListToolsResult:
        """Every tool the server offers (all pages)."""
        from mcp.types import ListToolsResult, PaginatedRequestParams

        tools: list[Any] = []
        cursor: str | None = None
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None

            async def page_of(session: ClientSession, params: Any = params) -> ListToolsResult:
                return await session.list_tools(params=params)

            page = await self.request(page_of)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return ListToolsResult(tools=tools)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        """Call one tool; MCP protocol errors raise `mcp.MCPError`."""
        return await self.request(
            lambda session: session.call_tool(
                name, arguments or {}, read_timeout_seconds=self.call_timeout
            )
        )

    async def request(self, send: Callable[[ClientSession], Awaitable[T]]) -> T:
        """`send(session)` on the open session; on a broken one, once more on a new one."""
        live = await self._current(None, None)
        try:
            return await self._on(live, send)
        except McpSessionLostError:
            logger.warning("the MCP session with %s dropped; opening a new one", self.server)
        live = await self._current(live, None)
        try:
            return await self._on(live, send)
        except McpSessionLostError:
            raise McpServerUnavailableError(
                f"the MCP server {self.server} dropped the session again"
            ) from None

    async def _on(self, live: _Live, send: Callable[[ClientSession], Awaitable[T]]) -> T:
        """`send` on `live`, raced against the session's end: a dead session never hangs it."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        sending = asyncio.ensure_future(send(live.session))
        ended = asyncio.ensure_future(live.lost.wait())
        try:
            await asyncio.wait({sending, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not sending.done():
                sending.cancel()
            await asyncio.gather(sending, ended, return_exceptions=True)
        if sending.cancelled():
            raise McpSessionLostError
        failure = sending.exception()
        if failure is None:
            return sending.result()
        if isinstance(failure, MCPError) and failure.code == REQUEST_TIMEOUT:
            raise failure  # a slow server, not a gone one: sending again would not help
        gone = isinstance(failure, MCPError) and failure.code == CONNECTION_CLOSED
        if gone or not await _alive(live):
            live.stop.set()  # an HTTP session the server forgot: let its task end
            raise McpSessionLostError from failure
        raise failure

    async def _current(self, broken: _Live | None, timeout: float | None) -> _Live:
        """The open session; a new one if there is none or `broken` is still the current."""
        async with self._lock:
            live = self._live
            if live is not None and live is not broken and not live.lost.is_set():
                return live
            if live is not None:
                self._live = None
                await _finish(live)
            limit = self.reconnect_timeout if timeout is None else timeout
            try:
                self._live = await with_backoff(
                    self._connect,
                    what=f"the MCP server {self.server}",
                    retry_on=(McpServerUnavailableError,),
                    timeout=limit,
                )
            except McpServerUnavailableError as exc:
                raise McpServerUnavailableError(
                    f"the MCP server {self.server} is unavailable (tried for {limit:g}s): {exc}"
                ) from exc
            return self._live

    async def _connect(self) -> _Live:
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        stop, lost = asyncio.Event(), asyncio.Event()
        number = self.sessions_opened + 1
        holder = asyncio.create_task(
            self._hold(ready, stop, lost), name=f"mcp-session-{number}-{self.server}"
        )
        try:
            session = await ready
        except BaseException:
            stop.set()
            await asyncio.gather(holder, return_exceptions=True)
            raise
        self.sessions_opened = number
        logger.info("MCP session %d with %s open", number, self.server)
        return _Live(session, holder, stop, lost)

    async def _hold(
        self, ready: asyncio.Future[ClientSession], stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        """Open the transport and the session, hand the session over, hold it until `stop`."""
        import anyio
        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(
                    ClientSession(read, write, read_timeout_seconds=self.call_timeout)
                )
                with anyio.fail_after(CONNECT_TIMEOUT):
                    initialized = await session.initialize()
                self.instructions = initialized.instructions
                if not ready.done():
                    ready.set_result(session)
                await stop.wait()
        except Exception as exc:
            reason = _reason(exc)
            if not ready.done():
                ready.set_exception(
                    McpServerUnavailableError(f"cannot open a session with {self.server}: {reason}")
                )
            elif not stop.is_set():
                logger.warning("the MCP session with %s ended: %s", self.server, reason)
        finally:
            lost.set()
            if not ready.done():
                ready.cancel()

    def _transport(self, stack: AsyncExitStack) -> Any:
        """The SDK's client transport for this server (an async context manager of streams)."""
        server = self.server
        if isinstance(server, McpStdioServer):
            from mcp import StdioServerParameters, stdio_client

            parameters = StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=dict(server.env) if server.env is not None else None,
                cwd=server.cwd,
            )
            return stdio_client(parameters)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        # Our own client, for the headers; the transport leaves a given client open.
        client = httpx2.AsyncClient(
            headers=dict(server.headers), timeout=httpx2.Timeout(30.0, read=300.0)
        )
        stack.push_async_callback(client.aclose)
        return streamable_http_client(server.url, http_client=client)


async def _alive(live: _Live) -> bool:
    """Whether the session still answers (a failed request may have been the server's
    refusal, or the sign of a session it no longer knows)."""
    if live.lost.is_set():
        return False
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            await live.session.send_ping()
    except Exception:
        return False
    return True


async def _finish(live: _Live) -> None:
    """Let the session's task close its transport; cancel it if that hangs."""
    live.stop.set()
    done, _ = await asyncio.wait({live.holder}, timeout=CLOSE_TIMEOUT)
    if not done:
        live.holder.cancel()
        await asyncio.gather(live.holder, return_exceptions=True)


def _reason(exc: BaseException) -> str:
    """The first real error inside `exc` (the SDK's task groups wrap them in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
