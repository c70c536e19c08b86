"""Task records in the state store, with the recently used ones kept in memory.

The cache holds each record with the row version it was read or written at, and the body
the store holds. Writers (under the task's lock) `load` the cached object, change it and save
it; if the save fails, the cached copy is dropped, so the next writer finds what the store has
(a redelivered result then finds its step still open). Readers that hold no lock take a
`snapshot`: a copy of what the store holds, never a change still being saved. Saves are
fenced by the version the object was read at: a record changed by someone else since (another
control-plane replica on a shared store) is refused (`ConcurrentUpdateError`), and the writer
reads it again. Other replicas' writes drop the cached copy (`forget_older`) when their
notice arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from llama_agents.control_plane.state import EventRow, NewEvent, StateStore, TaskPage, TaskRow
from llama_agents.errors import TaskExistsError, TaskNotFoundError
from llama_agents.messages.envelope import utc_now
from llama_agents.messages.records import TaskRecord, TaskStatus, TaskSummary


def _row(record: TaskRecord, version: int) -> TaskRow:
    return TaskRow(
        task_id=record.task_id,
        status=record.status.value,
        created_at=record.created_at,
        updated_at=record.updated_at,
        body=record.model_dump(mode="json"),
        version=version,
        session_id=record.session_id,
        finished_at=record.finished_at,
    )


def _record(row: TaskRow) -> TaskRecord:
    return TaskRecord.model_validate(row.body)


class TaskRepository:
    """Loads and saves `TaskRecord`s; keeps up to `cache_size` of them in memory.

    `amend` is given each record a writer loads from the store (not from the cache): what
    this process knows of it and has not saved yet goes on it (held publish marks).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        cache_size: int = 10_000,
        replica_id: str | None = None,
        amend: Callable[[TaskRecord], object] | None = None,
    ) -> None:
        self.store = store
        self.amend = amend
        #: Written into each saved record (`handled_by`) on a shared store.
        self.replica_id = replica_id
        #: task id -> (the writers' object, its stored version, the stored body)
        self._cache: OrderedDict[str, tuple[TaskRecord, int, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        #: task id -> the newest version another replica's notice announced.
        self._newer: OrderedDict[str, int] = OrderedDict()

    def _remember(self, record: TaskRecord, row: TaskRow) -> None:
        record._stored_version = row.version
        if row.version < self._newer.get(record.task_id, 0):
            # A read that began before another replica's write and ended after its notice:
            # caching it would keep the stale copy with no notice left to drop it.
            return
        self._cache[record.task_id] = (record, row.version, row.body)
        self._cache.move_to_end(record.task_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, task_id: str) -> None:
        self._cache.pop(task_id, None)

    def forget_older(self, task_id: str, version: int | None) -> None:
        """Someone else stored `version` of the task: drop a cached copy older than that
        (None: drop it whatever its version)."""
        cached = self._cache.get(task_id)
        if cached is not None and (version is None or cached[1] < version):
            del self._cache[task_id]
        if version is not None:
            self._newer[task_id] = max(version, self._newer.get(task_id, 0))
            self._newer.move_to_end(task_id)
            while len(self._newer) > self._cache_size:
                self._newer.popitem(last=False)

    def forget_all(self) -> None:
        """Drop every cached record (changes may have been missed)."""
        self._cache.clear()

    async def insert(self, record: TaskRecord) -> None:
        """Store a new task; `TaskExistsError` if its id is taken."""
        record.updated_at = utc_now()
        if self.replica_id is not None:
            record.handled_by = self.replica_id
        row = _row(record, 0)
        if not await self.store.insert_task(row):
            raise TaskExistsError(f"a task with id {record.task_id!r} already exists")
        self._remember(record, row)

    async def load(self, task_id: str) -> TaskRecord | None:
        """The task for a writer holding its lock (the cached object: change it only to save
        it; a reader without the lock takes a `snapshot`)."""
        cached = self._cache.get(task_id)
        if cached is not None:
            self._cache.move_to_end(task_id)
            return cached[0]
        row = await self.store.load_task(task_id)
        if row is None:
            return None
        record = _record(row)
        if self.amend is not None:
            self.amend(record)
        self._remember(record, row)
        return record

    async def snapshot(self, task_id: str) -> TaskRecord | None:
        """A copy of the task as the store holds it: never a change still being saved."""
        cached = self._cache.get(task_id)
        if cached is not None:
            copy = TaskRecord.model_validate(cached[2])
            copy._stored_version = cached[1]
            return copy
        row = await self.store.load_task(task_id)
        if row is None:
            return None
        copy = _record(row)
        copy._stored_version = row.version
        return copy

    async def stored(self, task_id: str) -> dict[str, Any] | None:
        """The task's record as the store holds it, as JSON (read it, never change it): for
        readers that need a field or two, not a whole record."""
        cached = self._cache.get(task_id)
        if cached is not None:
            return cached[2]
        row = await self.store.load_task(task_id)
        return None if row is None else row.body

    async def save(
        self,
        record: TaskRecord,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
        sequence_of: tuple[str, str] | None = None,
    ) -> list[EventRow]:
        """Store the changed record, with events for its log and its run's checkpoint, in one
        transaction (see `StateStore.save_task`); return the events appended. On any failure
        forget the record, so readers reload the store's."""
        version = record._stored_version
        if version is None:
            row = await self.store.load_task(record.task_id)
            if row is None:
                raise TaskNotFoundError(record.task_id)
            version = row.version
        record.updated_at = utc_now()
        if self.replica_id is not None:
            record.handled_by = self.replica_id
        if record.status.finished and record.result_published and record.finished_at is None:
            # Only then is it done with: recovery looks at tasks without `finished_at`.
            record.finished_at = record.updated_at
        row = _row(record, version)
        row.sequence_of = sequence_of
        try:
            appended = await self.store.save_task(row, events=events, checkpoint=checkpoint)
        except BaseException:
            self.forget(record.task_id)
            raise
        if sequence_of is not None:
            # The store set the field to the logged event's sequence: the record says it too.
            setattr(record, sequence_of[0], row.body.get(sequence_of[0]))
        self._remember(record, row)
        return appended

    async def page(
        self,
        *,
        limit: int,
        cursor: str | None,
        statuses: frozenset[str] | None = None,
        session_id: str | None = None,
    ) -> tuple[list[TaskSummary], str | None]:
        found: TaskPage = await self.store.list_tasks(
            limit=limit, cursor=cursor, statuses=statuses, session_id=session_id
        )
        return [_record(row).summary() for row in found.rows], found.next_cursor

    async def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in TaskStatus}
        counts.update(await self.store.count_tasks())
        return counts

    async def to_recover(self) -> list[TaskRecord]:
        """Unfinished tasks, and finished ones whose result the broker never confirmed."""
        records = []
        for row in await self.store.tasks_to_recover():
            record = _record(row)
            self._remember(record, row)
            records.append(record)
        return records

    async def delete_finished(self, task_ids: Sequence[str]) -> int:
        """Delete those of these tasks that finished, with their logs; return how many."""
        deleted = await self.store.delete_finished_tasks(task_ids)
        for task_id in task_ids:
            self.forget(task_id)
        return deleted

    async def purge(self, cutoff: datetime) -> int:
        """Delete tasks finished before `cutoff` (in batches); return how many."""
        total = 0
        while True:
            deleted = await self.store.delete_finished_before(cutoff, limit=1000)
            total += deleted
            if deleted < 1000:
                break
        if total:
            self._cache = OrderedDict(
                (task_id, entry)
                for task_id, entry in self._cache.items()
                if entry[0].finished_at is None or entry[0].finished_at >= cutoff
            )
        return total
