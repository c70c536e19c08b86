"""`LlamaAgentsClient`: the control plane's HTTP API for scripts, notebooks and the CLI.

The same calls as `AsyncLlamaAgentsClient` (both send the `Call`s of `_protocol`), blocking.
Do not use it on a thread whose event loop is serving the control plane: it would block the
loop that has to answer it.
"""

from __future__ import annotations

from collections.abc import Iterator
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


class LlamaAgentsClient:
    """Talks to a control plane over HTTP, reusing one connection pool for every call.

    Args:
        control_plane_url: e.g. `http://127.0.0.1:8000`.
        api_key: sent as `Authorization: Bearer <key>`; default `LLAMA_AGENTS_API_KEY`.
        timeout: seconds for connecting and for each answer (long-polls get their wait on
            top); None waits forever.
        transport: an httpx transport to use instead of the network (tests, WSGI apps).

    Use it as `with LlamaAgentsClient(url) as client:`, or call `close()`.
    Every failure is a `llama_agents.errors.ControlPlaneError` (or a subclass).
    """

    def __init__(
        self,
        control_plane_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = api.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = api.ClientConfig.build(control_plane_url, api_key, timeout)
        self._http = httpx.Client(
            base_url=self._config.base_url,
            headers=self._config.headers,
            timeout=self._config.timeout,
            transport=transport,
        )

    @property
    def control_plane_url(self) -> str:
        return self._config.base_url

    @property
    def http(self) -> httpx.Client:
        """The one httpx client (and connection pool) every call goes through."""
        return self._http

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.control_plane_url!r})"

    def _send(self, call: api.Call[T]) -> T:
        with translated_errors(self.control_plane_url):
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                timeout=self._config.hold_timeout(call.hold),
            )
        return call.interpret(response)

    # -- tasks --------------------------------------------------------------------------

    def create_task(
        self, input: str, *, task_id: str | None = None, result_key: str | None = None
    ) -> str:
        """Submit a task; returns its id at once (the task runs in the background)."""
        return self._send(api.create_task(input, task_id, result_key))

    def get_task(self, task_id: str) -> TaskRecord:
        """Everything the control plane knows about the task: status, steps, result."""
        return self._send(api.get_task(task_id))

    def get_task_result(self, task_id: str) -> TaskResult | None:
        """The result once the task finished (a failed one has `error` set), else None."""
        return self._send(api.get_task_result(task_id))

    def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """The result as soon as the task finishes; `TaskTimeoutError` after `timeout` seconds.

        The server holds each request until the task finishes (long-polling), so this
        returns the moment the result exists without polling.
        """
        plan = api.ResultWait(task_id, timeout)
        while True:
            result = self._send(plan.next_call())
            if result is not None:
                return result
            plan.check()

    def list_tasks(self) -> list[TaskSummary]:
        return self._send(api.list_tasks())

    def cancel_task(self, task_id: str) -> TaskSummary:
        """Cancel a task that has not finished (a finished one is left as it is)."""
        return self._send(api.cancel_task(task_id))

    # -- services -----------------------------------------------------------------------

    def list_services(self) -> list[ServiceDefinition]:
        return self._send(api.list_services())

    def get_service(self, name: str) -> ServiceDefinition:
        return self._send(api.get_service(name))

    def register_service(self, definition: ServiceDefinition) -> ServiceDefinition:
        return self._send(api.register_service(definition))

    def deregister_service(self, name: str) -> None:
        self._send(api.deregister_service(name))

    # -- the control plane --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The control plane's own summary: broker connection, services, task counts."""
        return self._send(api.status())

    def health(self) -> bool:
        """True when the control plane answers and its broker is connected; never raises for
        an unreachable control plane (that is simply not healthy)."""
        try:
            return self._send(api.health())
        except ControlPlaneUnavailableError:
            return False

    def events(self) -> EventStream:
        """Every task and service change, as it happens.

        `with client.events() as events:` returns once the control plane has subscribed the
        stream; `for event in events:` then yields `ControlPlaneEvent`s.
        """
        return EventStream(self)


class EventStream:
    """An open `GET /events` stream; iterate it for `ControlPlaneEvent`s."""

    def __init__(self, client: LlamaAgentsClient) -> None:
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
        client = self._client
        call = api.events()
        with translated_errors(client.control_plane_url):
            request = client.http.build_request(
                call.method,
                call.path,
                headers=EVENT_STREAM_HEADERS,
                timeout=client._config.stream_timeout(),
            )
            response = client.http.send(request, stream=True)
            self._response = response
            if not call.accepts(response.status_code):
                response.read()
                self.close()
                raise api.error_for(response)
            self._lines = response.iter_lines()
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
