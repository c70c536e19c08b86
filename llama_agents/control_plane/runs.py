"""Workflow runs seen from the control plane: their updates, the inputs sent in, resumes.

A run reports updates (events, checkpoints, waiting, released) from the replica holding it.
An input for the run is stored with the task first, then sent to that replica's own address;
if no replica holds the run (released while it waited, or its replica died), the control
plane resumes it: a new step, carrying the last checkpoint and the inputs it has not taken,
that any replica can pick up. An input stays stored until a checkpoint says the run took it,
so a replica dying in between loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from llama_agents.control_plane.conflicts import retry_on_conflict
from llama_agents.control_plane.dispatch import Dispatcher
from llama_agents.control_plane.event_log import EventLog, streamed_events
from llama_agents.control_plane.registry import ServiceRegistry
from llama_agents.control_plane.schemas import validate_event
from llama_agents.control_plane.state import NewEvent, StateStore
from llama_agents.control_plane.task_repository import TaskRepository
from llama_agents.errors import (
    EventRejectedError,
    TaskFinishedError,
    TaskNotFoundError,
    TaskTimeoutError,
)
from llama_agents.messages.envelope import utc_now
from llama_agents.messages.records import (
    EventSent,
    RunState,
    StepRecord,
    StepStatus,
    TaskRecord,
    TaskStatus,
)
from llama_agents.messages.runs import RunBounce, RunInput, RunUpdate

logger = logging.getLogger("llama_agents.control_plane")

#: A step handed back unrun more often than this fails its task: each hand-back is a fresh
#: message, so the broker's redelivery limit never sees a replica that keeps crashing on it.
MAX_HANDBACKS = 10
#: Seconds a run's update or result waits for the updates ahead of it (handled by another
#: control plane at that moment) before it is applied anyway.
UPDATE_ORDER_WAIT = 10.0


class TaskHost(Protocol):
    """What the coordinator asks of the task manager (which owns it): the manager imports
    this module, never the other way round."""

    store: StateStore
    tasks: TaskRepository
    registry: ServiceRegistry
    log: EventLog
    dispatch: Dispatcher

    def lock(self, task_id: str) -> asyncio.Lock: ...

    async def get(self, task_id: str) -> TaskRecord: ...

    async def save(
        self,
        record: TaskRecord,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> None: ...

    async def flush(self, record: TaskRecord) -> None: ...

    async def fail(self, task_id: str, error: str) -> None: ...

    def timeout_for(self, service: str) -> float | None: ...

    async def wait_until(
        self, task_id: str, predicate: Callable[[TaskRecord], bool], timeout: float | None
    ) -> TaskRecord: ...


class RunCoordinator:
    """Applies run updates and bounces, and sends inputs into runs."""

    def __init__(self, manager: TaskHost) -> None:
        self.manager = manager

    # -- updates from the replica -----------------------------------------------------

    async def in_turn(self, task_id: str, sent_id: str, before: int) -> None:
        """Wait until the run's first `before` updates are applied (or no longer matter).

        A run's updates and result leave its replica in order, but with several control
        planes on one queue two of them may be handled at once, by two replicas: the later
        one waits for the earlier, so the run's events are logged in the order it streamed
        them. With one control plane (a single-writer store) they are applied in order
        anyway: nothing to wait for.
        """
        if before <= 0 or not self.manager.store.shared:
            return

        def applied(record: TaskRecord) -> bool:
            step = record.sent_step(sent_id)
            if record.status.finished or step is None or step.status is not StepStatus.PENDING:
                return True
            run = record.run
            return run is not None and run.step_id == sent_id and run.last_update >= before - 1

        try:
            await self.manager.wait_until(task_id, applied, UPDATE_ORDER_WAIT)
        except TaskTimeoutError:
            logger.warning(
                "task %s: run update %d of step %s came before the ones ahead of it; applied "
                "after waiting %gs",
                task_id,
                before,
                sent_id,
                UPDATE_ORDER_WAIT,
            )
        except TaskNotFoundError:
            return

    async def handle_update(self, update: RunUpdate) -> None:
        await self.in_turn(update.task_id, update.step_id, update.sequence)
        await self._apply_update(update)

    @retry_on_conflict
    async def _apply_update(self, update: RunUpdate) -> None:
        m = self.manager
        async with m.lock(update.task_id):
            record = await m.tasks.load(update.task_id)
            if record is None:
                return
            step = record.sent_step(update.step_id)
            if record.status.finished or step is None or step.status is not StepStatus.PENDING:
                logger.debug(
                    "late update for task %s step %s dropped", update.task_id, update.step_id
                )
                return
            # Its run reports: the step reached the service, whatever the store says yet. On
            # a shared store the replica that published it may not have saved its mark when
            # another replica gets the run's first update; `flush` below would send it again.
            step.published = True
            events = streamed_events(update.events, step_id=step.sent_id)
            run = record.run
            if (
                run is not None
                and run.step_id == step.sent_id
                and (update.sequence <= run.last_update)
            ):
                # An older or repeated update: keep its events (an append is idempotent);
                # finish what a first delivery cut short may have left undone, change
                # nothing else.
                await self._deliver(record)
                await m.save(record, events=events)
                await m.flush(record)
                return
            if run is None or run.step_id != step.sent_id:
                run = record.run = RunState(step_id=step.sent_id, service=step.service)
            run.last_update = update.sequence
            if update.checkpoint is not None:
                run.has_checkpoint = True
                taken = set(update.applied_inputs)
                run.inputs = [i for i in run.inputs if i.input_id not in taken]
                run.delivered = [d for d in run.delivered if d not in taken]
            run.holder = update.holder
            run.released = update.released
            run.waiting = update.waiting
            run.prompt = update.prompt.model_dump(mode="json") if update.prompt else None
            record.status = TaskStatus.WAITING_FOR_INPUT if run.waiting else TaskStatus.RUNNING
            limit = m.timeout_for(step.service)
            step.deadline_at = (
                None if run.waiting or not limit else utc_now() + timedelta(seconds=limit)
            )
            await self._deliver(record)
            # Events, checkpoint and record in one transaction: a failed write changes
            # nothing (the record is reloaded) and the redelivered update applies again.
            await m.save(
                record,
                events=events,
                checkpoint=(
                    None
                    if update.checkpoint is None
                    else {"step_id": step.sent_id, "sequence": update.sequence, **update.checkpoint}
                ),
            )
            await m.flush(record)

    async def _deliver(self, record: TaskRecord) -> None:
        """Get stored inputs to the run: to its holder, or by resuming it if nobody holds it."""
        run = record.run
        if run is None or not run.inputs:
            return
        if run.released or (run.holder is None and run.has_checkpoint and run.waiting):
            await self.resume(record)
            return
        if run.holder is None:
            return  # not started yet: its first update names the holder
        pending = [i for i in run.inputs if i.input_id not in run.delivered]
        if pending and not await self.manager.dispatch.send_inputs(run, pending):
            # The holder is gone with the run unacknowledged: the broker gives the step to
            # another replica, which hands it back (`handle_bounce`), and we resume then.
            logger.info("task %s: the replica holding its run is gone", record.task_id)
            run.holder = None

    async def resume(self, record: TaskRecord) -> StepRecord:
        """Send the run's step again, as a new attempt that continues it from its checkpoint."""
        run = record.run
        assert run is not None
        step = record.sent_step(run.step_id)
        assert step is not None
        step.attempt += 1
        step.published = False
        step.deadline_at = None
        step.resume = run.has_checkpoint
        record.run = RunState(
            step_id=step.sent_id,
            service=step.service,
            has_checkpoint=run.has_checkpoint,
            inputs=run.inputs,
            delivered=[i.input_id for i in run.inputs],  # they travel with the step
            waiting=run.waiting and not run.inputs,
            prompt=run.prompt,
        )
        if record.status is TaskStatus.WAITING_FOR_INPUT and run.inputs:
            record.status = TaskStatus.RUNNING
        return step

    # -- steps handed back ------------------------------------------------------------

    @retry_on_conflict
    async def handle_bounce(self, bounce: RunBounce) -> None:
        """A step came back unrun: send it again, unless it keeps coming back (a replica that
        crashes on it is redelivered, hands it back, and would crash again, forever)."""
        m = self.manager
        give_up: str | None = None
        async with m.lock(bounce.task_id):
            record = await m.tasks.load(bounce.task_id)
            if record is None:
                return
            step = record.sent_step(bounce.step_id)
            if record.status.finished or step is None or step.status is not StepStatus.PENDING:
                return
            run = record.run
            if bounce.reason == "not_held":
                if run is None or run.step_id != step.sent_id:
                    return
                if bounce.input_id in run.delivered:
                    run.delivered.remove(bounce.input_id)
                if not run.released:
                    # It finished or is releasing: its own update or result settles it.
                    run.holder = None
                    await m.save(record)
                    return
            else:
                step.handbacks += 1
                if step.handbacks > MAX_HANDBACKS:
                    give_up = (
                        f"step {step.step_id} of service {step.service!r} was handed back "
                        f"unrun {step.handbacks} times ({bounce.reason}): its replicas may "
                        "be crashing on it"
                    )
                else:
                    logger.info(
                        "task %s step %s came back unrun (%s); sending it again",
                        record.task_id,
                        step.sent_id,
                        bounce.reason,
                    )
                if give_up is None and (run is None or run.step_id != step.sent_id):
                    record.run = RunState(step_id=step.sent_id, service=step.service)
                    record.run.has_checkpoint = (
                        await m.store.load_checkpoint(record.task_id) is not None
                    )
            if give_up is None:
                await self.resume(record)
                await m.save(record)
                await m.flush(record)
        if give_up is not None:
            logger.warning("task %s: %s", bounce.task_id, give_up)
            await m.fail(bounce.task_id, give_up)

    # -- inputs from clients ----------------------------------------------------------

    async def send_event(
        self, task_id: str, type_name: str, data: dict[str, Any], step: str | None = None
    ) -> EventSent:
        """Validate an event for the task's run, store it, and send it on its way."""
        # One id for every attempt: a retried write must not send the run a second input.
        return await self._send_input(task_id, type_name, data, step, str(uuid.uuid4()))

    @retry_on_conflict
    async def _send_input(
        self, task_id: str, type_name: str, data: dict[str, Any], step: str | None, input_id: str
    ) -> EventSent:
        m = self.manager
        async with m.lock(task_id):
            record = await m.get(task_id)
            if record.status.finished:
                raise TaskFinishedError(f"task {task_id} is {record.status.value}")
            open_steps = record.open_steps()
            run = record.run
            service = run.service if run is not None else None
            if service is None and open_steps:
                service = open_steps[-1].service
            if service is None:
                service = record.service
            if service is None:
                raise EventRejectedError(f"task {task_id} has no run to send events to yet")
            validate_event(await m.registry.lookup(service), type_name, data)
            run_input = RunInput(
                input_id=input_id, task_id=task_id, type=type_name, data=data, step=step
            )
            if run is None:
                target = next((s for s in reversed(open_steps) if s.service == service), None)
                if target is None:
                    raise EventRejectedError(f"task {task_id} has no run to send events to yet")
                run = record.run = RunState(step_id=target.sent_id, service=service)
            run.inputs.append(run_input)
            await self._deliver(record)
            delivered = run_input.input_id in run.delivered or record.run is not run
            await m.save(record)
            await m.flush(record)
        return EventSent(
            task_id=task_id,
            input_id=run_input.input_id,
            status="sent" if delivered else "queued",
        )
