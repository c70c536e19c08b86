"""`AsyncLlamaAgentsClient`: the control plane's HTTP API for asyncio code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from llama_agents import tracing
from llama_agents.errors import ControlPlaneUnavailableError
from llama_agents.messages import ServiceDefinition, TaskResult
from llama_agents.messages.records import (
    EventSent,
    ServiceInfo,
    SessionInfo,
    TaskEvent,
    TaskRecord,
    TaskSummary,
)

from . import _dead_letters, _sessions, _task_events
from . import _protocol as api
from ._async_streams import AsyncEventStream, AsyncTaskEventStream, logged_events
from ._config import DEFAULT_TIMEOUT, ClientConfig
from ._dead_letters import DeadLetterInfo, DeadLetterPage, ReplayReport
from ._errors import translated_errors
from ._plans import ResultWait, TaskPages
from ._sessions import AsyncSession

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
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig.build(control_plane_url, api_key, timeout)
        tracing.enabled()  # client spans and `traceparent` on requests, when tracing
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
    def config(self) -> ClientConfig:
        """The validated settings (URL, headers, timeouts) this client was built with."""
        return self._config

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
                headers=call.headers,
                timeout=self._config.hold_timeout(call.hold),
            )
        return call.interpret(response)

    # -- tasks --------------------------------------------------------------------------

    async def create_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> str:
        """Submit a task; returns its id at once (the task runs in the background).

        `service` runs it on that service directly (no orchestrator); `start_event` gives a
        workflow service's start event fields; `session_id` continues a session (see
        `create_session`). `publish_result=False` publishes no result message (to `human`,
        or `result_key`): the caller reads the result from the control plane instead, and no
        queue fills up unread. `TaskExistsError` if `task_id` is taken, `ServiceNotFoundError` /
        `SessionNotFoundError` for an unknown service or session.
        """
        call = api.create_task(
            api.new_task(
                input,
                task_id,
                result_key,
                service=service,
                start_event=start_event,
                session_id=session_id,
                publish_result=publish_result,
            )
        )
        return await self._send(call)

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
        plan = ResultWait(task_id, timeout)
        while True:
            result = await self._send(plan.next_call())
            if result is not None:
                return result
            plan.check()

    async def list_tasks(
        self,
        *,
        status: str | Iterable[str] | None = None,
        session_id: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> list[TaskSummary]:
        """Tasks, newest first: with `status` (one or several `TaskStatus`es) and
        `session_id`, only those; at most `limit` (None: every one), read `page_size` at a
        time."""
        pages = self.iter_tasks(
            status=status, session_id=session_id, limit=limit, page_size=page_size
        )
        return [task async for task in pages]

    def iter_tasks(
        self,
        *,
        status: str | Iterable[str] | None = None,
        session_id: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[TaskSummary]:
        """`list_tasks`, a page at a time: the next page is read when this one is used up."""
        plan = TaskPages(status=status, session_id=session_id, limit=limit, page_size=page_size)
        return self._pages(plan)

    async def _pages(self, plan: TaskPages) -> AsyncIterator[TaskSummary]:
        while not plan.done:
            for task in plan.take(await self._send(plan.next_call())):
                yield task

    async def cancel_task(self, task_id: str) -> TaskSummary:
        """Cancel a task that has not finished (a finished one is left as it is)."""
        return await self._send(api.cancel_task(task_id))

    # -- a task's events ----------------------------------------------------------------

    async def stream_task(
        self,
        input: str,
        task_id: str | None = None,
        result_key: str | None = None,
        *,
        service: str | None = None,
        start_event: dict[str, Any] | None = None,
        session_id: str | None = None,
        publish_result: bool = True,
    ) -> AsyncTaskEventStream:
        """Submit a task and stream its events in the same request (`POST /tasks/stream`):
        one round trip fewer than `create_task` then `stream_events`, and the same stream
        (reopened where it broke, ending with `TaskFinished`; its `task_id` says which task).

        The task exists once this returns; the arguments and the errors are
        `create_task`'s, raised here. Use it as
        `async with await client.stream_task(...) as stream: async for event in stream: ...`.
        """
        new_id, call = _task_events.create_and_stream(
            api.new_task(
                input,
                task_id,
                result_key,
                service=service,
                start_event=start_event,
                session_id=session_id,
                publish_result=publish_result,
            )
        )
        stream = AsyncTaskEventStream(self, new_id, None, first=call)
        await stream.open()
        return stream

    def stream_events(self, task_id: str, after: int | None = None) -> AsyncTaskEventStream:
        """The task's events after sequence `after`, as they happen, ending with its
        `TaskFinished`; a dropped connection is reopened where it broke (nothing is lost or
        repeated). `async for` over it; `TaskNotFoundError` for an unknown task."""
        return AsyncTaskEventStream(self, task_id, after)

    async def get_events(self, task_id: str, after: int | None = None) -> list[TaskEvent]:
        """The task's events after sequence `after` that are logged now.

        It returns at once, with what the log holds when the control plane reads it
        (`?follow=false`); use `stream_events` to follow a run.
        """
        return await logged_events(self, task_id, after)

    async def send_event(
        self,
        task_id: str,
        type: str,
        data: dict[str, Any] | None = None,
        step: str | None = None,
    ) -> EventSent:
        """Send an event (one of the workflow's, by class name) into the task's run.

        `UnknownEventTypeError` (400) if the workflow does not declare it,
        `EventRejectedError` (422) if `data` does not fit it, `TaskFinishedError` (409) if
        the task ended, `TaskNotFoundError` (404).
        """
        return await self._send(_task_events.send_event(task_id, type, data, step))

    async def respond(self, task_id: str, text: str) -> EventSent:
        """Answer a run waiting for a person (a `HumanResponseEvent` with `response=text`)."""
        return await self._send(_task_events.respond(task_id, text))

    # -- sessions -----------------------------------------------------------------------

    async def create_session(self, session_id: str | None = None) -> AsyncSession:
        """A new session (`SessionExistsError` if `session_id` is taken): its tasks run one
        at a time, each continuing the context the previous one left."""
        info = await self._send(_sessions.create_session(session_id))
        return AsyncSession(self, info.session_id)

    async def get_session(self, session_id: str) -> SessionInfo:
        """The session's tasks, the active one, the queued ones (`SessionNotFoundError`)."""
        return await self._send(_sessions.get_session(session_id))

    async def delete_session(self, session_id: str) -> None:
        """Forget a session and the context it kept (`SessionNotFoundError`)."""
        await self._send(_sessions.delete_session(session_id))

    # -- services -----------------------------------------------------------------------

    async def list_services(self) -> list[ServiceInfo]:
        """The registered services, each with how many consumers its queue has now."""
        return await self._send(api.list_services())

    async def get_service(self, name: str) -> ServiceInfo:
        return await self._send(api.get_service(name))

    async def register_service(self, definition: ServiceDefinition) -> ServiceDefinition:
        return await self._send(api.register_service(definition))

    async def deregister_service(self, name: str) -> None:
        await self._send(api.deregister_service(name))

    # -- dead letters -------------------------------------------------------------------

    async def list_dead_letters(self, limit: int = 100) -> DeadLetterPage:
        """How many dead letters wait, and the oldest `limit` of them (none is removed)."""
        return await self._send(_dead_letters.list_dead_letters(limit))

    async def count_dead_letters(self) -> int | None:
        """How many dead letters wait (None: the system's queue cannot tell)."""
        return await self._send(_dead_letters.count_dead_letters())

    async def get_dead_letter(self, letter_id: str) -> DeadLetterInfo:
        """One dead letter by its id (or a unique prefix of it)."""
        return await self._send(_dead_letters.get_dead_letter(letter_id))

    async def replay_dead_letters(
        self, ids: list[str] | None = None, *, all: bool = False, reason: str | None = None
    ) -> ReplayReport:
        """Put dead letters back on their routing keys, attempts reset; the tasks their
        steps failed are reopened first, so they complete once the letters are handled."""
        return await self._send(_dead_letters.replay_dead_letters(ids, all=all, reason=reason))

    async def purge_dead_letters(self) -> int:
        """Delete every dead letter; how many were deleted."""
        return await self._send(_dead_letters.purge_dead_letters())

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
