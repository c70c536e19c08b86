"""Each task's event log: appended from run updates, read by streams that wake on appends.

Events are stored before anyone sees them, numbered 1, 2, ... per task with no gap, so a
client that reconnects with the last sequence it saw gets exactly the rest. Readers never
poll: each append (and a task's end) wakes the streams waiting on that task.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from llama_agents.control_plane.state import EventRow, NewEvent, StateStore
from llama_agents.messages.runs import StreamedEvent

#: The type of the last event of every task's log.
TASK_FINISHED = "TaskFinished"
#: Its dedupe key (a reopened task's later ends add `:<n>`).
FINISHED_KEY = "finished"
#: The event a dead-letter replay logs when it reopens an ended task: the `TaskFinished`
#: before it is superseded, and streams skip it.
TASK_REOPENED = "TaskReopened"


def event_body(event: StreamedEvent, *, step_id: str | None = None) -> dict[str, Any]:
    """How a streamed event is stored (the `TaskEvent` wire model without its sequence)."""
    return {
        "type": event.type,
        "types": event.types,
        "data": event.data,
        "qualified_name": event.qualified_name,
        "created_at": event.emitted_at.astimezone(UTC).isoformat(),
        "step_id": step_id,
    }


def streamed_events(events: list[StreamedEvent], *, step_id: str) -> list[NewEvent]:
    """A run's streamed events as log entries, keyed so a redelivered message adds nothing."""
    return [NewEvent(event_body(e, step_id=step_id), dedupe_key=e.key) for e in events]


def finished_key(reopened: int) -> str:
    """The dedupe key of a task's `TaskFinished` after `reopened` reopenings."""
    return FINISHED_KEY if reopened == 0 else f"{FINISHED_KEY}:{reopened}"


def reopened_body(step_id: str, reason: str) -> dict[str, Any]:
    """The event of a task reopened after it ended (its step's dead letter was replayed)."""
    return {
        "type": TASK_REOPENED,
        "types": [TASK_REOPENED],
        "data": {"step_id": step_id, "reason": reason},
        "qualified_name": None,
        "created_at": datetime.now(UTC).isoformat(),
        "step_id": step_id,
    }


def finished_body(status: str, result: Any, error: str | None) -> dict[str, Any]:
    """The terminal event: the task's final status, its result and error."""
    return {
        "type": TASK_FINISHED,
        "types": [TASK_FINISHED],
        "data": {"status": status, "result": result, "error": error},
        "qualified_name": None,
        "created_at": datetime.now(UTC).isoformat(),
        "step_id": None,
    }


#: Recent events kept in memory per followed task, so a woken reader need not read the store.
_TAIL = 256
#: How many logs' last sequence is remembered.
_KNOWN_LOGS = 10_000


class EventLog:
    """Appends to the store and wakes the readers of the task.

    The events just appended to a task that someone follows are also kept in memory (the
    last `_TAIL`): a reader woken by them takes them from there when they continue exactly
    where it stopped, and reads the store otherwise.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._changed: dict[str, asyncio.Event] = {}
        self._readers: dict[str, int] = {}
        self._tails: dict[str, list[EventRow]] = {}
        #: The last sequence of recently created or appended logs: a reader already there
        #: need not read the store. (Other replicas' appends drop the entry when their
        #: notice arrives, and wake the readers.)
        self._last: OrderedDict[str, int] = OrderedDict()

    def created(self, task_id: str) -> None:
        """A task was created here: its log is empty."""
        self._note_last(task_id, 0)

    def _note_last(self, task_id: str, sequence: int) -> None:
        self._last[task_id] = sequence
        self._last.move_to_end(task_id)
        while len(self._last) > _KNOWN_LOGS:
            self._last.popitem(last=False)

    async def append(self, task_id: str, events: list[NewEvent]) -> list[EventRow]:
        """Store events (skipping known keys) and wake the task's readers."""
        if not events:
            return []
        appended = await self.store.append_events(task_id, events)
        self.appended(task_id, appended)
        return appended

    def appended(self, task_id: str, rows: list[EventRow]) -> None:
        """Events were committed to the task's log (here or with its record): wake readers."""
        if not rows:
            return
        self._note_last(task_id, rows[-1].sequence)
        tail = self._tails.get(task_id)
        if tail is not None:
            if tail and tail[-1].sequence + 1 != rows[0].sequence:
                tail.clear()  # another replica appended in between: the tail must not skip
            tail.extend(rows)
            del tail[:-_TAIL]
        self.wake(task_id)

    def appended_elsewhere(self, task_id: str) -> None:
        """Another control plane appended to the task's log: what is known here of its end
        is stale; the readers read the store."""
        self._last.pop(task_id, None)
        tail = self._tails.get(task_id)
        if tail is not None:
            tail.clear()
        self.wake(task_id)

    def forget_all(self) -> None:
        """Changes may have been missed (the store's notices were cut): read the store."""
        self._last.clear()
        for tail in self._tails.values():
            tail.clear()
        for task_id in list(self._changed):
            self.wake(task_id)

    def wake(self, task_id: str) -> None:
        changed = self._changed.pop(task_id, None)
        if changed is not None:
            changed.set()

    def close(self) -> None:
        """Wake every reader (the control plane is stopping)."""
        for changed in self._changed.values():
            changed.set()
        self._changed.clear()

    @property
    def readers(self) -> int:
        return sum(self._readers.values())

    async def _last_in_log(self, task_id: str, sequence: int) -> bool:
        """True when no event follows `sequence` in the task's log."""
        if self._last.get(task_id) == sequence:
            return True
        return not await self.store.read_events(task_id, after=sequence, limit=1)

    async def _after(self, task_id: str, after: int) -> list[EventRow]:
        """The events after `after`: from memory when it holds them all, else the store."""
        tail = self._tails.get(task_id)
        if tail and tail[0].sequence <= after + 1 <= tail[-1].sequence:
            return [row for row in tail if row.sequence > after]
        if tail and tail[-1].sequence <= after:
            return []  # nothing new since (appends are in memory before readers wake)
        if self._last.get(task_id) == after:
            return []
        return await self.store.read_events(task_id, after=after, limit=500)

    async def follow(
        self,
        task_id: str,
        after: int,
        *,
        is_finished: Any,
        heartbeat: float,
        stopping: asyncio.Event,
    ) -> AsyncGenerator[EventRow | None, None]:
        """Events after `after`, one at a time (see `follow_batches`)."""
        async for batch in self.follow_batches(
            task_id, after, is_finished=is_finished, heartbeat=heartbeat, stopping=stopping
        ):
            if batch is None:
                yield None
                continue
            for row in batch:
                yield row

    async def follow_batches(
        self,
        task_id: str,
        after: int,
        *,
        is_finished: Any,
        heartbeat: float,
        stopping: asyncio.Event,
    ) -> AsyncGenerator[list[EventRow] | None, None]:
        """Events after `after`, as they are appended, until the task's terminal event; each
        batch holds the events available at once (a stream sends them in one write).

        Yields None after `heartbeat` seconds without an event (for keep-alives). Ends after
        the terminal event, when `is_finished()` says the task ended and nothing is left, or
        when `stopping` is set.
        """
        self._readers[task_id] = self._readers.get(task_id, 0) + 1
        self._tails.setdefault(task_id, [])
        try:
            while not stopping.is_set():
                changed = self._changed.setdefault(task_id, asyncio.Event())
                rows = await self._after(task_id, after)
                if rows:
                    after = rows[-1].sequence
                    ended = rows[-1].body.get("type") == TASK_FINISHED
                    if ended and not await self._last_in_log(task_id, after):
                        ended = False  # a reopening follows it: it is superseded
                    shown = [r for i, r in enumerate(rows) if not _superseded(rows, i, ended)]
                    if shown:
                        yield shown
                    if ended:
                        return
                    continue
                if await is_finished():
                    # Its terminal event may have come since the read above: read again.
                    if await self.store.read_events(task_id, after=after, limit=1):
                        continue
                    # Finished with no terminal event (a log from before it existed, or one
                    # cut by retention): nothing more will come.
                    return
                try:
                    # Not `wait_for`: on Python 3.11 it wraps the wait in a task of its own.
                    async with asyncio.timeout(heartbeat):
                        await changed.wait()
                except TimeoutError:
                    yield None
        finally:
            left = self._readers.get(task_id, 1) - 1
            if left:
                self._readers[task_id] = left
            else:
                self._readers.pop(task_id, None)
                self._tails.pop(task_id, None)


def _superseded(rows: list[EventRow], index: int, ended: bool) -> bool:
    """A `TaskFinished` that a reopening undid: any but the log's last one (which ends the
    stream when `ended`)."""
    if rows[index].body.get("type") != TASK_FINISHED:
        return False
    return index < len(rows) - 1 or not ended
