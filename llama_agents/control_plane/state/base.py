"""What the control plane keeps, as the store sees it: rows of JSON with a few indexed columns.

The store knows nothing of the control plane's models: a task is a `TaskRow` (the columns it
filters, sorts and fences on, plus the record as a JSON dict), an event a `EventRow`. That keeps
each backend (SQLite, PostgreSQL) a thin layer of SQL, and the models free to grow.

Every write that decides something is fenced: a task row carries a `version`, and
`save_task` only replaces the row it read (`ConcurrentUpdateError` otherwise), so two writers
can never both apply a decision. Events are idempotent by `dedupe_key`, and their per-task
`sequence` is gap-free: a redelivered message never appends an event twice.

Control-plane replicas share one store (`shared`): each learns of the others' writes from
`watch()` (a `StoreChange` per committed write), keeps itself alive with `beat()`, and
decides who does a singular job (retention, say) with `try_lease()`.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger("llama_agents.control_plane.state")


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


@dataclass(frozen=True)
class StoreChange:
    """A committed write, as the store's watchers hear of it.

    - kind "task": a task was inserted or saved (`version` is its row's version after the
      write) or deleted (`version` None); `key` is its id.
    - kind "events": events were appended to task `key`'s log; `version` is the newest sequence.
    - kind "service" / "session": the service (by name) or session (by id) `key` was saved
      (`version`: the session's version after the write; None for a service) or deleted (None).
    - kind "resync": changes may have been missed (the feed's connection broke): whoever caches
      what the store holds reloads it. `key` is "" and `version` None.

    `origin` is the `store_id` of the store instance that wrote it, so a replica can skip what
    it wrote itself.
    """

    kind: str
    key: str
    version: int | None
    origin: str


#: Called on the event loop with each change; it must not block (schedule work instead).
ChangeListener = Callable[[StoreChange], None]


class StateStore(ABC):
    """The control plane's durable state. Every method is safe to call from the event loop.

    A write returns once it is durable (committed), so a message may be acknowledged after it.
    """

    #: True when several processes (control-plane replicas) may use this store at once, so
    #: what one of them caches can be changed by another (it learns of it from `watch()`).
    shared: bool = False

    def __init__(self) -> None:
        #: This instance's id: the `origin` of the changes it writes.
        self.store_id = uuid.uuid4().hex
        self._listeners: list[ChangeListener] = []

    def watch(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` with every change committed to the store from now on (its own
        writes included: they carry its `store_id` as `origin`); returns the function that
        stops it."""
        self._listeners.append(listener)

        def unwatch() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unwatch

    def _announce(self, change: StoreChange) -> None:
        """Hand a change to every listener; one that fails is logged, never the writer's error."""
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                logger.exception("state store change listener %r failed", listener)

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

    # -- replicas ---------------------------------------------------------------------

    @abstractmethod
    async def beat(self, replica_id: str, ttl: float) -> None:
        """Say replica `replica_id` is alive for `ttl` more seconds (by the store's clock)."""

    @abstractmethod
    async def live_replicas(self) -> set[str]:
        """The replicas whose last `beat` has not expired."""

    @abstractmethod
    async def forget_replica(self, replica_id: str) -> None:
        """Drop a replica at once (a clean shutdown), rather than when its beat expires."""

    @abstractmethod
    async def try_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease `name` for `ttl` seconds (by the store's clock): True when
        `holder` now holds it (it was free, expired, or already `holder`'s), else False.

        A lease names the one replica that does a job nobody else may do at the same time;
        the holder renews it well before `ttl` runs out, and stops the job if a renewal fails.
        """

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease `name` up, if `holder` holds it (so another may take it at once)."""
