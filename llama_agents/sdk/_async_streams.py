"""The async client's streams: every change (`GET /events`), and one task's events
(`GET /tasks/{id}/events`), followed across dropped connections or read so far."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

import httpx

from llama_agents.errors import ControlPlaneUnavailableError
from llama_agents.messages.records import ControlPlaneEvent, TaskEvent, TaskRecord

from . import _protocol as api
from ._config import ClientConfig
from ._errors import translated_errors
from ._plans import EventFollow
from ._sse import EventParser, TaskEventParser, parse_task_event
from ._task_events import END_LINES, END_WAIT_SECONDS, check_after, task_events


class AsyncStreamClient(Protocol):
    """What a stream asks of its client (the client module imports this one, not back)."""

    @property
    def control_plane_url(self) -> str: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def config(self) -> ClientConfig: ...

    async def get_task(self, task_id: str) -> TaskRecord: ...


async def _open(client: AsyncStreamClient, call: api.Call[None]) -> httpx.Response:
    """Send a stream's request; the response is open unless its status is an error."""
    request = client.http.build_request(
        call.method,
        call.path,
        json=call.json,
        params=call.params,
        headers=call.headers,
        timeout=client.config.stream_timeout(),
    )
    response = await client.http.send(request, stream=True)
    if not call.accepts(response.status_code):
        try:
            await response.aread()
        finally:
            await response.aclose()
        raise api.error_for(response, call.errors)
    return response


class AsyncEventStream:
    """An open `GET /events` stream; iterate it for `ControlPlaneEvent`s."""

    def __init__(self, client: AsyncStreamClient) -> None:
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
        with translated_errors(self._client.control_plane_url):
            self._response = await _open(self._client, api.events())
            self._lines = self._response.aiter_lines()
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


class AsyncTaskEventStream:
    """A task's events in order, from after `after` until its `TaskFinished` (the last
    event yielded). A dropped connection is reopened where it broke (`EventFollow`).

    Iterate it; `aclose()` (or leaving `async with`) stops early. `last_sequence` is the sequence of
    the last event yielded: `stream_events(task_id, after=last_sequence)` continues it later.
    """

    def __init__(
        self,
        client: AsyncStreamClient,
        task_id: str,
        after: int | None,
        *,
        first: api.Call[None] | None = None,
    ) -> None:
        self._client = client
        self._plan = EventFollow(task_id, after, first)
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._parser = TaskEventParser()
        self._closed = False

    @property
    def task_id(self) -> str:
        return self._plan.task_id

    @property
    def last_sequence(self) -> int:
        return self._plan.last

    async def aclose(self) -> None:
        self._closed = True
        if self._plan.done:
            await _read_end(self._lines)
        await self._disconnect()

    async def open(self) -> None:
        """Connect now rather than at the first read (`stream_task` has created the task once
        this returns). The library's exception for an error status, as the first read's."""
        if self._lines is not None or self._plan.done or self._closed:
            return
        try:
            with translated_errors(self._client.control_plane_url):
                await self._connect()
        except BaseException:
            await self.aclose()
            raise

    async def _connect(self) -> AsyncIterator[str]:
        self._response = await _open(self._client, self._plan.next_call())
        self._lines = lines = self._response.aiter_lines()
        self._parser = TaskEventParser()  # a cut event is not half-kept
        self._plan.opened()
        return lines

    async def _disconnect(self) -> None:
        response, self._response, self._lines = self._response, None, None
        if response is not None:
            await response.aclose()

    async def __aenter__(self) -> Self:
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

    async def __anext__(self) -> TaskEvent:
        try:
            with translated_errors(self._client.control_plane_url):
                event = await self._next_event()
        except BaseException:
            await self.aclose()
            raise
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def _next_event(self) -> TaskEvent | None:
        while not (self._plan.done or self._closed):
            try:
                lines = self._lines if self._lines is not None else await self._connect()
                line = await anext(lines, None)
            except httpx.TransportError as exc:  # refused, reset, cut mid-body, silent
                await self._disconnect()
                if not self._plan.reopens:
                    raise
                await asyncio.sleep(self._plan.retry_delay(str(exc) or type(exc).__name__))
                continue
            if line is None:
                await self._disconnect()
                await self._ended()
                continue
            event = self._parser.feed(line)
            if event is not None and self._plan.take(event):
                return event
        return None

    async def _ended(self) -> None:
        """The stream ended before `TaskFinished`: done, or reopen it after a pause."""
        try:
            record = await self._client.get_task(self._plan.task_id)
        except ControlPlaneUnavailableError as exc:
            await asyncio.sleep(self._plan.retry_delay(str(exc)))
            return
        delay = self._plan.ended(record)
        if delay is not None:
            await asyncio.sleep(delay)


async def _read_end(lines: AsyncIterator[str] | None) -> None:
    """Read a finished stream to its end (the server ends it after `TaskFinished`), so its
    connection is kept for the next request: closing a response before its end closes
    the connection, and every task then paid for a new one. Bounded: a stream that does
    not end at once is closed as before."""
    if lines is None:
        return
    try:
        async with asyncio.timeout(END_WAIT_SECONDS):
            for _ in range(END_LINES):
                if await anext(lines, None) is None:
                    return
    except (TimeoutError, httpx.HTTPError):
        return


async def logged_events(
    client: AsyncStreamClient, task_id: str, after: int | None
) -> list[TaskEvent]:
    """The task's events after `after` that its log holds now (see `get_events`)."""
    call = task_events(task_id, check_after(after), ndjson=True, follow=False)
    events: list[TaskEvent] = []
    with translated_errors(client.control_plane_url):
        response = await _open(client, call)
        lines = response.aiter_lines()
        try:
            async for line in lines:
                if not line.strip():
                    break  # a blank line ends nothing in ndjson; stop rather than hang
                events.append(parse_task_event(line))
                if events[-1].is_terminal:
                    await _read_end(lines)
                    break
        finally:
            await response.aclose()
    return events
