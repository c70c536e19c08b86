"""What the control plane keeps, as the store sees it: rows of JSON with a few indexed columns.

The store knows nothing of the control plane's models: a task is a `TaskRow` (the columns it
filters, sorts and fences on, plus the record as a JSON dict), an event a `EventRow`. That keeps
each backend (SQLite, PostgreSQL) a thin layer of SQL, and the models free to grow.

Every write that decides something is fenced: a task row carries a `version`, and
`save_task` only replaces the row it read (`ConcurrentUpdateError` otherwise), so two writers
can never both apply a decision. Events are idempotent by `dedupe_key`, and their per-task
`sequence` is gap-free: a redelivered message never appends an event twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self


@dataclass
class TaskRow:
    """One task as stored: the indexed columns, and the whole record as JSON."""

    task_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    body: dict[str, Any]
    version: int = 0
    session_id: str | None = None
    #: Set once the task is done with (finished, its result delivered); retention uses it.
    finished_at: datetime | None = None
    #: (body key, dedupe key): on save, set that key of the body to the sequence of the
    #: event logged under that dedupe key, in the same transaction (a record naming its own
    #: terminal event, appended with it).
    sequence_of: tuple[str, str] | None = None


@dataclass(frozen=True)
class TaskPage:
    """One page of a task listing, newest first; `next_cursor` continues it (None: the end)."""

    rows: list[TaskRow]
    next_cursor: str | None


@dataclass(frozen=True)
class NewEvent:
    """An event to append to a task's log; `dedupe_key` makes the append idempotent."""

    body: dict[str, Any]
    dedupe_key: str | None = None


@dataclass(frozen=True)
class EventRow:
    """An event in a task's log: its sequence number (1, 2, ... per task) and its JSON."""

    task_id: str
    sequence: int
    body: dict[str, Any]


@dataclass
class SessionRow:
    """A session: the tasks run in it, and the context each service left it in."""

    session_id: str
    created_at: datetime
    updated_at: datetime
    body: dict[str, Any] = field(default_factory=dict)
    version: int = 0


class StateStore(ABC):
    """The control plane's durable state. Every method is safe to call from the event loop.

    A write returns once it is durable (committed), so a message may be acknowledged after it.
    """

    async def open(self) -> None:  # noqa: B027 - optional: backends that need setup override it
        """Create the schema if needed; called once before any other method."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and files."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    #: True when what is stored outlives the process (a file, a server).
    durable: bool = True

    # -- tasks ------------------------------------------------------------------------

    @abstractmethod
    async def insert_task(self, row: TaskRow) -> bool:
        """Add a new task (version 1); False, and nothing written, if its id exists."""

    @abstractmethod
    async def save_task(
        self,
        row: TaskRow,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> list[EventRow]:
        """Replace the task `row.version` says was read, then bump `row.version`; in the same
        transaction, append `events` to its log (as `append_events` does) and keep
        `checkpoint` as its newest. Returns the events appended.

        Raises `ConcurrentUpdateError` when the stored version is not `row.version` (and
        nothing is written).
        """

    @abstractmethod
    async def load_task(self, task_id: str) -> TaskRow | None:
        """The task, or None."""

    @abstractmethod
    async def list_tasks(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        statuses: frozenset[str] | None = None,
        session_id: str | None = None,
    ) -> TaskPage:
        """Tasks newest first, `limit` at a time, optionally only some statuses or one session."""

    @abstractmethod
    async def count_tasks(self) -> dict[str, int]:
        """How many tasks there are in each status (from the index, not the records)."""

    @abstractmethod
    async def tasks_to_recover(self) -> list[TaskRow]:
        """Every task without `finished_at`: what a restarted control plane must look at."""

    @abstractmethod
    async def delete_finished_before(self, cutoff: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` tasks that finished before `cutoff`, with their events and
        checkpoints; return how many were deleted."""

    @abstractmethod
    async def delete_finished_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete those of these tasks that finished (completed, failed or cancelled), with
        their events and checkpoints, in one transaction; return how many were deleted."""

    # -- events -----------------------------------------------------------------------

    @abstractmethod
    async def append_events(self, task_id: str, events: list[NewEvent]) -> list[EventRow]:
        """Append events in order and return the ones appended (a known `dedupe_key` is skipped).

        Sequences continue the task's log with no gap.
        """

    @abstractmethod
    async def read_events(self, task_id: str, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """The task's events with a sequence above `after`, oldest first."""

    @abstractmethod
    async def last_sequence(self, task_id: str) -> int:
        """The sequence of the task's newest event (0 when it has none)."""

    # -- checkpoints ------------------------------------------------------------------

    @abstractmethod
    async def save_checkpoint(self, task_id: str, body: dict[str, Any]) -> None:
        """Keep the newest checkpoint of a task's run (replacing the previous one)."""

    @abstractmethod
    async def load_checkpoint(self, task_id: str) -> dict[str, Any] | None:
        """The task's newest checkpoint, or None."""

    @abstractmethod
    async def delete_checkpoint(self, task_id: str) -> None:
        """Forget a checkpoint (no error if there is none)."""

    # -- sessions ---------------------------------------------------------------------

    @abstractmethod
    async def insert_session(self, row: SessionRow) -> bool:
        """Add a new session; False if its id exists."""

    @abstractmethod
    async def save_session(self, row: SessionRow) -> None:
        """Replace the session version `row.version` (fenced like `save_task`)."""

    @abstractmethod
    async def load_session(self, session_id: str) -> SessionRow | None:
        """The session, or None."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete a session (its tasks stay); False if there was none."""

    # -- services ---------------------------------------------------------------------

    @abstractmethod
    async def save_service(self, name: str, body: dict[str, Any]) -> None:
        """Register or update a service."""

    @abstractmethod
    async def delete_service(self, name: str) -> bool:
        """Forget a service; False if it was not registered."""

    @abstractmethod
    async def all_services(self) -> dict[str, dict[str, Any]]:
        """Every registered service by name."""
