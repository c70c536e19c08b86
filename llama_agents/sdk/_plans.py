"""What takes several calls, planned once for both clients: waiting for a result, paging
through tasks, following a task's events across dropped connections.

A plan says which `Call` comes next and what an answer means; the clients only send and
sleep (sync or async), so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter

from llama_agents.errors import ConfigurationError, ControlPlaneUnavailableError, TaskTimeoutError
from llama_agents.messages import TaskResult
from llama_agents.messages.records import (
    MAX_WAIT_SECONDS,
    TaskEvent,
    TaskRecord,
    TaskStatus,
    TaskSummary,
)

from ._protocol import Call, get_task_result, identifier
from ._task_events import check_after, task_events

#: The most tasks one `GET /tasks` page may hold (the server's limit).
MAX_PAGE = 1000
#: A task's stream that cannot be reopened for this long, with no event meanwhile, is lost.
RECONNECT_FOR = 30.0
#: The longest pause between two attempts to reopen a task's stream.
MAX_RECONNECT_DELAY = 5.0


class ResultWait:
    """Plans `wait_for_result`: long-polls each holding the time left (at most the server's
    maximum), so the client learns of the result the moment it exists, without polling."""

    def __init__(self, task_id: str, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ConfigurationError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
        self.task_id = task_id
        self.timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def next_call(self) -> Call[TaskResult | None]:
        left = MAX_WAIT_SECONDS if self._deadline is None else self._deadline - time.monotonic()
        return get_task_result(self.task_id, wait=max(0.0, min(left, MAX_WAIT_SECONDS)))

    def check(self) -> None:
        """Raise `TaskTimeoutError` once the caller's time is up."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TaskTimeoutError(
                f"task {self.task_id!r} did not finish within {self.timeout:g} seconds"
            )


# -- listing tasks ----------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPage:
    """One page of `GET /tasks`, and the cursor of the next (None after the last)."""

    tasks: list[TaskSummary]
    next_cursor: str | None


def statuses(status: str | Iterable[str] | None) -> list[str]:
    """The statuses a listing filters by (a `TaskStatus` is a str), checked before sending."""
    if status is None:
        return []
    values = [status] if isinstance(status, str) else list(status)
    known = [s.value for s in TaskStatus]
    for value in values:
        if value not in known:
            raise ConfigurationError(f"unknown task status {value!r}; one of {', '.join(known)}")
    return [TaskStatus(value).value for value in values]


_SUMMARIES = TypeAdapter(list[TaskSummary])


def _page(response: httpx.Response) -> TaskPage:
    tasks = list(_SUMMARIES.validate_json(response.content))
    return TaskPage(tasks, response.headers.get("x-next-cursor") or None)


class TaskPages:
    """Plans `iter_tasks`: newest first, `page_size` at a time, following `x-next-cursor`
    until `limit` tasks were read or the listing ends."""

    def __init__(
        self,
        *,
        status: str | Iterable[str] | None,
        session_id: str | None,
        limit: int | None,
        page_size: int,
    ) -> None:
        for name, value in (("limit", limit), ("page_size", page_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigurationError(f"{name} must be a whole number, not {value!r}")
        if limit is not None and limit < 0:
            raise ConfigurationError(f"limit must be >= 0 or None (every task), not {limit}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ConfigurationError(f"page_size must be 1 to {MAX_PAGE}, not {page_size}")
        self._params: dict[str, Any] = {}
        if status is not None:
            self._params["status"] = statuses(status)
        if session_id is not None:
            self._params["session_id"] = identifier(session_id, "session_id")
        self._page_size = page_size
        self._left = limit
        self._cursor: str | None = None
        self.done = limit == 0

    def next_call(self) -> Call[TaskPage]:
        size = self._page_size if self._left is None else min(self._page_size, self._left)
        params = {**self._params, "limit": size}
        if self._cursor is not None:
            params["cursor"] = self._cursor
        return Call("GET", "/tasks", _page, params=params)

    def take(self, page: TaskPage) -> list[TaskSummary]:
        """The page's tasks the caller gets; `done` once there is nothing more to read."""
        tasks = page.tasks if self._left is None else page.tasks[: self._left]
        if self._left is not None:
            self._left -= len(tasks)
        self._cursor = page.next_cursor
        self.done = self._cursor is None or not page.tasks or self._left == 0
        return tasks


# -- following a task's events ----------------------------------------------------------


class EventFollow:
    """Plans `stream_events`: each connection asks for the events after the last one seen
    (`Last-Event-ID`), so a dropped connection costs nothing: the next one sends exactly the
    rest. Events at or before the last one seen are never yielded twice.

    A connection that drops (or ends before the task's `TaskFinished`) is reopened at once,
    then with growing pauses; the stream gives up (`ControlPlaneUnavailableError`) after
    `RECONNECT_FOR` seconds of trying without an event. A first connection that fails is
    not retried: a wrong URL is reported at once.

    `first`, when given, is the first connection's call instead (`stream_task`'s, which
    creates the task): only ever sent once; reconnections read the task's events.
    """

    def __init__(self, task_id: str, after: int | None, first: Call[None] | None = None) -> None:
        self.task_id = identifier(task_id, "task_id")
        self.last = check_after(after)
        self.done = False
        self._first = first
        self._opened = False
        self._failures = 0
        self._failing_since: float | None = None

    def next_call(self) -> Call[None]:
        first, self._first = self._first, None
        return first if first is not None else task_events(self.task_id, self.last)

    def opened(self) -> None:
        """A connection was opened: from now on, losing it is worth reopening."""
        self._opened = True

    @property
    def reopens(self) -> bool:
        """False until a connection opened: a first failure is the caller's to see."""
        return self._opened

    def take(self, event: TaskEvent) -> bool:
        """True when the event is new (then it is the last one seen)."""
        if event.sequence <= self.last:
            return False
        self.last = event.sequence
        self._failures, self._failing_since = 0, None
        if event.is_terminal:
            self.done = True
        return True

    def retry_delay(self, reason: str) -> float:
        """The connection is gone: the pause before the next one, or the error to give up."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > RECONNECT_FOR:
            raise ControlPlaneUnavailableError(
                f"lost the event stream of task {self.task_id!r} after event {self.last} and "
                f"could not reopen it for {RECONNECT_FOR:g} seconds: {reason}"
            )
        self._failures += 1
        if self._failures == 1:
            return 0.0
        return min(0.25 * 2.0 ** (self._failures - 2), MAX_RECONNECT_DELAY)

    def ended(self, record: TaskRecord) -> float | None:
        """The stream ended without `TaskFinished`: None when the task's log is complete
        (a finished task whose log has no terminal event), else the pause before reopening
        it (the control plane stopped the stream, say)."""
        finished_event = record.finished_event
        if record.status.finished and (finished_event is None or finished_event <= self.last):
            self.done = True
            return None
        return self.retry_delay("the stream ended before the task's last event")
