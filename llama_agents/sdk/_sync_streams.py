"""The blocking client's streams: every change (`GET /events`), and one task's events
(`GET /tasks/{id}/events`), followed across dropped connections or read so far."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
from ._task_events import END_LINES, check_after, task_events


class StreamClient(Protocol):
    """What a stream asks of its client (the client module imports this one, not back)."""

    @property
    def control_plane_url(self) -> str: ...

    @property
    def http(self) -> httpx.Client: ...

    @property
    def config(self) -> ClientConfig: ...

    def get_task(self, task_id: str) -> TaskRecord: ...


def _open(client: StreamClient, call: api.Call[None]) -> httpx.Response:
    """Send a stream's request; the response is open unless its status is an error."""
    request = client.http.build_request(
        call.method,
        call.path,
        json=call.json,
        params=call.params,
        headers=call.headers,
        timeout=client.config.stream_timeout(),
    )
    response = client.http.send(request, stream=True)
    if not call.accepts(response.status_code):
        try:
            response.read()
        finally:
            response.close()
        raise api.error_for(response, call.errors)
    return response


class EventStream:
    """An open `GET /events` stream; iterate it for `ControlPlaneEvent`s."""

    def __init__(self, client: StreamClient) -> None:
        self._client = client
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._parser = EventParser()
        self._pending: ControlPlaneEvent | None = None
        self._closed = False

    def open(self) -> None:
        """Connect, and wait for the stream's first line: from then on, no change is missed."""
        if self._response is not None or self._closed:
            return
        with translated_errors(self._client.control_plane_url):
            self._response = _open(self._client, api.events())
            self._lines = self._response.iter_lines()
            try:
                first = next(self._lines, None)
            except BaseException:
                self.close()  # never leave the response open behind an error
                raise
        if first is not None:
            self._pending = self._parser.feed(first)

    def close(self) -> None:
        self._closed = True
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ControlPlaneEvent:
        self.open()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self._closed or self._lines is None:
            raise StopIteration
        with translated_errors(self._client.control_plane_url):
            for line in self._lines:
                event = self._parser.feed(line)
                if event is not None:
                    return event
        self.close()
        raise StopIteration


class TaskEventStream:
    """A task's events in order, from after `after` until its `TaskFinished` (the last
    event yielded). A dropped connection is reopened where it broke (`EventFollow`).

    Iterate it; `close()` (or leaving `with`) stops early. `last_sequence` is the sequence of
    the last event yielded: `stream_events(task_id, after=last_sequence)` continues it later.
    """

    def __init__(
        self,
        client: StreamClient,
        task_id: str,
        after: int | None,
        *,
        first: api.Call[None] | None = None,
    ) -> None:
        self._client = client
        self._plan = EventFollow(task_id, after, first)
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._parser = TaskEventParser()
        self._closed = False

    @property
    def task_id(self) -> str:
        return self._plan.task_id

    @property
    def last_sequence(self) -> int:
        return self._plan.last

    def close(self) -> None:
        self._closed = True
        if self._plan.done:
            _read_end(self._lines)
        self._disconnect()

    def open(self) -> None:
        """Connect now rather than at the first read (`stream_task` has created the task once
        this returns). The library's exception for an error status, as the first read's."""
        if self._lines is not None or self._plan.done or self._closed:
            return
        try:
            with translated_errors(self._client.control_plane_url):
                self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> Iterator[str]:
        self._response = _open(self._client, self._plan.next_call())
        self._lines = lines = self._response.iter_lines()
        self._parser = TaskEventParser()  # a cut event is not half-kept
        self._plan.opened()
        return lines

    def _disconnect(self) -> None:
        response, self._response, self._lines = self._response, None, None
        if response is not None:
            response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> TaskEvent:
        try:
            with translated_errors(self._client.control_plane_url):
                event = self._next_event()
        except BaseException:
            self.close()
            raise
        if event is None:
            self.close()
            raise StopIteration
        return event

    def _next_event(self) -> TaskEvent | None:
        while not (self._plan.done or self._closed):
            try:
                lines = self._lines if self._lines is not None else self._connect()
                line = next(lines, None)
            except httpx.TransportError as exc:  # refused, reset, cut mid-body, silent
                self._disconnect()
                if not self._plan.reopens:
                    raise
                time.sleep(self._plan.retry_delay(str(exc) or type(exc).__name__))
                continue
            if line is None:
                self._disconnect()
                self._ended()
                continue
            event = self._parser.feed(line)
            if event is not None and self._plan.take(event):
                return event
        return None

    def _ended(self) -> None:
        """The stream ended before `TaskFinished`: done, or reopen it after a pause."""
        try:
            record = self._client.get_task(self._plan.task_id)
        except ControlPlaneUnavailableError as exc:
            time.sleep(self._plan.retry_delay(str(exc)))
            return
        delay = self._plan.ended(record)
        if delay is not None:
            time.sleep(delay)


def _read_end(lines: Iterator[str] | None) -> None:
    """Read a finished stream to its end (the server ends it after `TaskFinished`), so its
    connection is kept for the next request: closing a response before its end closes
    the connection. Bounded by lines (the server sends none after that event)."""
    if lines is None:
        return
    try:
        for _ in range(END_LINES):
            if next(lines, None) is None:
                return
    except httpx.HTTPError:
        return


def logged_events(client: StreamClient, task_id: str, after: int | None) -> list[TaskEvent]:
    """The task's events after `after` that its log holds now (see `get_events`)."""
    call = task_events(task_id, check_after(after), ndjson=True, follow=False)
    events: list[TaskEvent] = []
    with translated_errors(client.control_plane_url):
        response = _open(client, call)
        lines = response.iter_lines()
        try:
            for line in lines:
                if not line.strip():
                    break  # a blank line ends nothing in ndjson; stop rather than hang
                events.append(parse_task_event(line))
                if events[-1].is_terminal:
                    _read_end(lines)
                    break
        finally:
            response.close()
    return events
