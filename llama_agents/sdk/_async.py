"""`AsyncLlamaAgentsClient`: the control plane's HTTP API for asyncio code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from llama_agents.errors import ControlPlaneUnavailableError
from llama_agents.messages import ServiceDefinition, TaskResult
from llama_agents.messages.records import ControlPlaneEvent, TaskRecord, TaskSummary

from . import _protocol as api
from ._errors import translated_errors
from ._sse import EVENT_STREAM_HEADERS, EventParser

T = TypeVar("T")


class AsyncLlamaAgentsClient:
    """Talks to a control plane over HTTP, reusing one connection pool for every call.

    Args:
        control_plane_url: e.g. `http://127.0.0.1:8000`.
        api_key: sent as `Authorization: Bearer <key>`; default `LLAMA_AGENTS_API_KEY`.
        timeout: seconds for connecting and for each answer (long-polls get their wait on
            top); None waits forever.
        transport: an httpx transport to use instead of the network (tests, ASGI apps).

    Use it as `async with AsyncLlamaAgentsClient(url) as client:`, or call `aclose()`.
    Every failure is a `llama_agents.errors.ControlPlaneError` (or a subclass).
    """

    def __init__(
        self,
        control_plane_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = api.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = api.ClientConfig.build(control_plane_url, api_key, timeout)
        self._http = httpx.AsyncClient(
            base_url=self._config.base_url,
            headers=self._config.headers,
            timeout=self._config.timeout,
            transport=transport,
        )

    @property
    def control_plane_url(self) -> str:
        return self._config.base_url

    @property
    def http(self) -> httpx.AsyncClient:
        """The one httpx client (and connection pool) every call goes through."""
        return self._http

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.control_plane_url!r})"

    async def _send(self, call: api.Call[T]) -> T:
        with translated_errors(self.control_plane_url):
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                timeout=self._config.hold_timeout(call.hold),
            )
        return call.interpret(response)

    # -- tasks --------------------------------------------------------------------------

    async def create_task(
        self, input: str, *, task_id: str | None = None, result_key: str | None = None
    ) -> str:
        """Submit a task; returns its id at once (the task runs in the background)."""
        return await self._send(api.create_task(input, task_id, result_key))

    async def get_task(self, task_id: str) -> TaskRecord:
        """Everything the control plane knows about the task: status, steps, result."""
        return await self._send(api.get_task(task_id))

    async def get_task_result(self, task_id: str) -> TaskResult | None:
        """The result once the task finished (a failed one has `error` set), else None."""
        return await self._send(api.get_task_result(task_id))

    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The result as soon as the task finishes; `TaskTimeoutError` after `timeout` seconds.

        The server holds each request until the task finishes (long-polling), so this
        returns the moment the result exists without polling.
        """
        plan = api.ResultWait(task_id, timeout)
        while True:
            result = await self._send(plan.next_call())
            if result is not None:
                return result
            plan.check()

    async def list_tasks(self) -> list[TaskSummary]:
        return await self._send(api.list_tasks())

    async def cancel_task(self, task_id: str) -> TaskSummary:
        """Cancel a task that has not finished (a finished one is left as it is)."""
        return await self._send(api.cancel_task(task_id))

    # -- services -----------------------------------------------------------------------

    async def list_services(self) -> list[ServiceDefinition]:
        return await self._send(api.list_services())

    async def get_service(self, name: str) -> ServiceDefinition:
        return await self._send(api.get_service(name))

    async def register_service(self, definition: ServiceDefinition) -> ServiceDefinition:
        return await self._send(api.register_service(definition))

    async def deregister_service(self, name: str) -> None:
        await self._send(api.deregister_service(name))

    # -- the control plane --------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The control plane's own summary: broker connection, services, task counts."""
        return await self._send(api.status())

    async def health(self) -> bool:
        """True when the control plane answers and its broker is connected; never raises for
        an unreachable control plane (that is simply not healthy)."""
        try:
            return await self._send(api.health())
        except ControlPlaneUnavailableError:
            return False

    def events(self) -> AsyncEventStream:
        """Every task and service change, as it happens.

        `async with client.events() as events:` returns once the control plane has
        subscribed the stream (so nothing done after it is missed); `async for event in
        events:` then yields `ControlPlaneEvent`s.
        """
        return AsyncEventStream(self)


class AsyncEventStream:
    """An open `GET /events` stream; iterate it for `ControlPlaneEvent`s."""

    def __init__(self, client: AsyncLlamaAgentsClient) -> None:
        self._client = client
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._parser = EventParser()
        self._pending: ControlPlaneEvent | None = None
        self._closed = False

    async def open(self) -> None:
        """Connect, and wait for the stream's first line: from then on, no change is missed."""
        if self._response is not None or self._closed:
            return
        client = self._client
        call = api.events()
        with translated_errors(client.control_plane_url):
            request = client.http.build_request(
                call.method,
                call.path,
                headers=EVENT_STREAM_HEADERS,
                timeout=client._config.stream_timeout(),
            )
            response = await client.http.send(request, stream=True)
            self._response = response
            if not call.accepts(response.status_code):
                await response.aread()
                await self.aclose()
                raise api.error_for(response)
            self._lines = response.aiter_lines()
            try:
                first = await anext(self._lines, None)
            except BaseException:
                await self.aclose()  # never leave the response open behind an error
                raise
        if first is not None:
            self._pending = self._parser.feed(first)

    async def aclose(self) -> None:
        self._closed = True
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ControlPlaneEvent:
        await self.open()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self._closed or self._lines is None:
            raise StopAsyncIteration
        with translated_errors(self._client.control_plane_url):
            async for line in self._lines:
                event = self._parser.feed(line)
                if event is not None:
                    return event
        await self.aclose()
        raise StopAsyncIteration
