"""Publish marks written with a task's next save, not with a write of their own.

Once the broker confirmed a step, the control plane marks it published, so that a restart
does not send it again. That mark used to be a save of its own, right after the publish,
while the task is nearly always saved again soon anyway: the step's result, or a run's first
update. So a step's mark is held here and written with that save; it is written alone only
when no save came within `delay` seconds, or when the control plane stops.

A control plane killed within that window sends those steps again when it restarts (the
restart cannot tell them from steps never confirmed): at least once, as the delivery
contract says, and the control plane records one result per step. Result marks are not
held: a finished task is done with only once its result's publish is saved. Nor are marks
held on a shared store (control planes as replicas): another replica reading the task there
must see them, or it would publish the step again.

Every writer of the task sees the held marks: they are put on a record read from the store
again (`TaskRepository`'s `amend`) and on every record saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from llama_agents.messages.records import StepStatus, TaskRecord

#: Seconds a step's publish mark waits for its task's next save: long enough for a step
#: that waited its turn in its queue and made an LLM call (a workflow's first update), short
#: enough that a crash re-sends only the steps of the last few seconds.
DEFAULT_MARK_DELAY = 5.0


@dataclass(frozen=True)
class _Mark:
    step_id: str
    attempt: int
    deadline_at: datetime | None


class PublishMarks:
    """The publish marks not saved yet, by task.

    Args:
        delay: seconds a mark waits for its task's next save (0: none are held).
        write: saves a task's held marks on their own (called when the delay is up).
    """

    def __init__(self, delay: float, write: Callable[[str], Awaitable[None]]) -> None:
        self.delay = delay
        self._write = write
        self._held: dict[str, list[_Mark]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._writing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, record: TaskRecord) -> None:
        """Hold the marks of `record`'s published open steps until its next save (or
        `delay`)."""
        marks = [
            _Mark(step.step_id, step.attempt, step.deadline_at)
            for step in record.steps
            if step.published and step.status is StepStatus.PENDING
        ]
        if not marks:
            return
        self._held[record.task_id] = marks
        self._arm(record.task_id)

    def _arm(self, task_id: str) -> None:
        """Write the task's marks alone after `delay`, unless a save takes them first."""
        if task_id not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[task_id] = loop.call_later(self.delay, self._due, task_id)

    def apply(self, record: TaskRecord) -> None:
        """Put the marks held for `record` on it: a save of it is on its way, or it was read
        from the store again."""
        for mark in self._held.get(record.task_id, ()):
            step = record.step(mark.step_id)
            if (
                step is not None
                and step.attempt == mark.attempt
                and step.status is StepStatus.PENDING
                and not step.published
            ):
                step.published = True
                step.deadline_at = mark.deadline_at

    def saved(self, task_id: str) -> None:
        """The task was saved with its marks: nothing is held for it any more."""
        self._held.pop(task_id, None)
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

    def held(self, task_id: str) -> bool:
        return task_id in self._held

    def retry(self, task_id: str) -> None:
        """Writing the task's marks failed (the store is down): try again after `delay`,
        unless a save takes them first."""
        if task_id in self._held:
            self._arm(task_id)

    def _due(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        if task_id in self._held:
            self._start_write(task_id)

    def _start_write(self, task_id: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._write(task_id))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return task

    async def write_all(self, timeout: float) -> None:
        """Write every held mark now (the control plane is stopping), within `timeout`."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task_id in list(self._held):
            self._start_write(task_id)
        if self._writing:
            await asyncio.wait(list(self._writing), timeout=timeout)
