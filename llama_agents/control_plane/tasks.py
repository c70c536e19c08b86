"""The task manager: moves tasks through their steps; the control plane's core, without HTTP.

Every change is saved before the message that caused it is acknowledged, and before
anything it decided is published (see docs/architecture.md, "delivery contract"):

- a step is stored, then published, then marked published (the mark goes with the task's
  next save: `publish_marks.py`); a restart publishes what was stored but never marked;
- a service's result is recorded once per step id (a redelivered result finds its step
  closed); deciding the next step runs afterwards, bounded (`decisions.py`);
- a step that never comes back fails its task at its deadline (`deadlines.py`); one that was
  dead-lettered fails it with the reason (the service's dead-letter hook reports it);
- a publish that fails is retried for a bounded time, then the task fails; one that no queue
  can take fails it at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from llama_index.core.tools import BaseTool
from pydantic_core import to_jsonable_python

from llama_agents import tracing
from llama_agents.control_plane.conflicts import retry_on_conflict
from llama_agents.control_plane.deadlines import Deadlines
from llama_agents.control_plane.decisions import DecisionRunner
from llama_agents.control_plane.dispatch import Dispatcher
from llama_agents.control_plane.event_log import (
    EventLog,
    finished_body,
    finished_key,
    streamed_events,
)
from llama_agents.control_plane.events import ControlPlaneEvent, EventHub
from llama_agents.control_plane.models import NewTask
from llama_agents.control_plane.publish_marks import DEFAULT_MARK_DELAY, PublishMarks
from llama_agents.control_plane.registry import ServiceRegistry
from llama_agents.control_plane.runs import RunCoordinator
from llama_agents.control_plane.schemas import validate_start_event
from llama_agents.control_plane.sessions import SessionManager
from llama_agents.control_plane.state import NewEvent, StateStore, StoreChange
from llama_agents.control_plane.task_repository import TaskRepository
from llama_agents.errors import (
    ConcurrentUpdateError,
    MessageQueueError,
    ServiceNotFoundError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnknownResultKeyError,
    UnroutableMessageError,
)
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import QueueMessage, TaskDefinition, TaskResult
from llama_agents.messages.envelope import utc_now
from llama_agents.messages.records import (
    StepRecord,
    StepStatus,
    TaskRecord,
    TaskStatus,
)
from llama_agents.metrics.control_plane import ControlPlaneMetrics
from llama_agents.orchestrators.base import BaseOrchestrator, is_final
from llama_agents.orchestrators.service_tool import ServiceTool

logger = logging.getLogger("llama_agents.control_plane")


class TaskManager:
    """Creates tasks, records results, asks the orchestrator, publishes steps.

    Args:
        store: where everything is kept.
        orchestrator: decides the next steps of tasks that name no service.
        message_queue: where steps, results, inputs and cancels are published.
        events: the hub pushing task and service changes to monitors.
        step_timeout: seconds a step may go without an answer (or, for a workflow run,
            without a sign of life) before its task fails; None: no limit. A service's own
            `step_timeout` wins; human services have none unless they set one.
        decision_timeout: seconds an orchestrator decision may take.
        max_concurrent_decisions: orchestrator decisions (LLM calls) at once.
        publish_retry_for: seconds a publish is retried while the broker refuses it.
        result_key: the default message type of results (its queue is declared).
        publish_mark_delay: seconds a step's publish mark waits to be written with its
            task's next save (`publish_marks`); 0 writes it at once, as a shared store
            (control planes as replicas) always does.
    """

    def __init__(
        self,
        store: StateStore,
        orchestrator: BaseOrchestrator,
        message_queue: BaseMessageQueue,
        *,
        events: EventHub | None = None,
        step_timeout: float | None = 600.0,
        decision_timeout: float = 120.0,
        max_concurrent_decisions: int = 16,
        publish_retry_for: float = 120.0,
        result_key: str = "human",
        publish_mark_delay: float = DEFAULT_MARK_DELAY,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.message_queue = message_queue
        self.events = events or EventHub()
        #: On a shared store (control planes as replicas), this replica's id.
        self.replica_id: str | None = store.store_id if store.shared else None
        # With control planes as replicas, marks are written at once: another replica
        # reading the task from the store must see them.
        self.marks = PublishMarks(
            0.0 if store.shared else publish_mark_delay, self._write_held_marks
        )
        self.tasks = TaskRepository(store, replica_id=self.replica_id, amend=self.marks.apply)
        self.registry = ServiceRegistry(store, message_queue, self.events)
        self.sessions = SessionManager(store)
        self.log = EventLog(store)
        self.dispatch = Dispatcher(message_queue, store, self.sessions)
        self.metrics = ControlPlaneMetrics(
            type(orchestrator).__name__,
            task_stream_readers=lambda: self.log.readers,
            change_stream_readers=lambda: self.events.subscriber_count,
        )
        self.decisions = DecisionRunner(
            self.metrics.timed_decisions(self._decide), concurrency=max_concurrent_decisions
        )
        self.deadlines = Deadlines(lambda task_id: self.spawn(self._expire(task_id)))
        self.step_timeout = step_timeout
        self.decision_timeout = decision_timeout
        self.publish_retry_for = publish_retry_for
        self._result_keys = {result_key}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._changes: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._retrying: set[str] = set()
        self.stopping = asyncio.Event()
        self.runs = RunCoordinator(self)
        self._unwatch = store.watch(self._on_store_change) if store.shared else None

    # -- other replicas ---------------------------------------------------------------

    def _on_store_change(self, change: StoreChange) -> None:
        """Another control plane wrote to the shared store: drop what is stale here and
        wake whoever waits on it (long polls, streams, monitors)."""
        if change.origin == self.store.store_id:
            return
        if change.kind == "task":
            self.tasks.forget_older(change.key, change.version)
            self._wake(change.key)
            if self.events.has_subscribers:
                self.spawn(self._tell_monitors(change.key))
        elif change.kind == "events":
            self.log.appended_elsewhere(change.key)
        elif change.kind == "service":
            self.spawn(self.registry.load(announce=True))
        elif change.kind == "resync":
            self.tasks.forget_all()
            self.log.forget_all()
            for task_id in list(self._changes):
                self._wake(task_id)
            self.spawn(self.registry.load(announce=True))

    def _wake(self, task_id: str) -> None:
        event = self._changes.pop(task_id, None)
        if event is not None:
            event.set()

    async def _tell_monitors(self, task_id: str) -> None:
        record = await self.tasks.snapshot(task_id)
        if record is not None:
            self.events.publish(
                ControlPlaneEvent(kind="task", action="updated", task=record.summary())
            )

    # -- plumbing ---------------------------------------------------------------------

    def lock(self, task_id: str) -> asyncio.Lock:
        lock = self._locks.get(task_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[task_id] = lock
        return lock

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def get(self, task_id: str) -> TaskRecord:
        """The task for a writer holding its lock (see `TaskRepository.load`)."""
        record = await self.tasks.load(task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record

    async def read(self, task_id: str) -> TaskRecord:
        """The task as stored, for a reader holding no lock (a copy)."""
        record = await self.tasks.snapshot(task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record

    async def save(
        self,
        record: TaskRecord,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        """Save, with events for the task's log and its run's checkpoint, all in one
        transaction; then wake whoever waits on the task and tell monitors.

        A task that ends gets its `TaskFinished` event in the same transaction, after the
        others: whoever sees it finished finds its event log complete, and whoever sees its
        terminal event finds it finished.
        """
        logged = list(events)
        sequence_of = None
        if record.status.finished and record.finished_event is None:
            result = record.result
            body = finished_body(
                record.status.value,
                result.data.get("result", result.result) if result else None,
                record.error,
            )
            key = finished_key(record.reopened)
            logged.append(NewEvent(body, dedupe_key=key))
            sequence_of = ("finished_event", key)
        if (
            record.status.finished
            and not record.result_published
            and record.result_key is None
            and record.session_id is None
        ):
            # No result message to publish and nothing to do after its end (a session's
            # turn is handed on first, see `after_finish`): done with in this same write.
            record.result_published = True
        held = self.marks.held(record.task_id)
        if held:
            self.marks.apply(record)
        appended = await self.tasks.save(
            record, events=logged, checkpoint=checkpoint, sequence_of=sequence_of
        )
        if held:
            self.marks.saved(record.task_id)
        self.log.appended(record.task_id, appended)
        if sequence_of is not None:
            self.metrics.task_finished(record)
        self._changed(record)

    def _changed(self, record: TaskRecord) -> None:
        self._wake(record.task_id)
        if self.events.has_subscribers:
            self.events.publish(
                ControlPlaneEvent(kind="task", action="updated", task=record.summary())
            )
        self.deadlines.set(record.task_id, _next_deadline(record))

    def timeout_for(self, service: str) -> float | None:
        """Seconds a step of `service` may take: its own setting, else the default."""
        definition = self.registry.get(service)
        if definition is not None and definition.step_timeout is not None:
            return definition.step_timeout if definition.step_timeout > 0 else None
        if definition is not None and definition.kind == "human":
            return None
        return self.step_timeout

    # -- creating and starting --------------------------------------------------------

    async def create(self, new_task: NewTask) -> TaskRecord:
        """Store a new task and start it (or queue it behind its session); return it."""
        if new_task.result_key is not None and new_task.result_key not in self._result_keys:
            if not await self.message_queue.queue_exists(new_task.result_key):
                raise UnknownResultKeyError(
                    f"no queue takes results for {new_task.result_key!r}: declare it (or "
                    "register a consumer of that type) before sending results there"
                )
            self._result_keys.add(new_task.result_key)
        if new_task.service is not None:
            definition = await self.registry.lookup(new_task.service)
            if definition is None:
                raise ServiceNotFoundError(new_task.service)
            validate_start_event(definition, new_task.start_event)
        elif new_task.start_event is not None:
            validate_start_event(None, new_task.start_event)
        if new_task.session_id is not None:
            await self.sessions.get(new_task.session_id)
        record = TaskRecord(
            task_id=new_task.task_id,
            input=new_task.input,
            result_key=new_task.result_key,
            service=new_task.service,
            session_id=new_task.session_id,
            start_event=new_task.start_event,
            agent_id=new_task.agent_id,
            state=dict(new_task.state),
        )
        direct = record.service is not None and record.session_id is None
        if direct:
            # Stored with its first step: one write, then the step is published.
            assert record.service is not None
            self.add_step(record, record.service, None)
            record.status = TaskStatus.RUNNING
        tracing.start_task(record)
        async with self.lock(record.task_id):
            await self.tasks.insert(record)
        self.log.created(record.task_id)
        self.metrics.task_created(record)
        self._changed(record)
        if direct:
            self.spawn(self._publish_first_step(record.task_id))
            return record
        start_now = True
        if record.session_id is not None:
            start_now = await self.sessions.enqueue(record.session_id, record.task_id)
        if start_now:
            self.spawn(self.start(record.task_id))
        return record

    @retry_on_conflict
    async def _publish_first_step(self, task_id: str) -> None:
        async with self.lock(task_id):
            await self.flush(await self.get(task_id))

    @retry_on_conflict
    async def start(self, task_id: str) -> None:
        """Send a new task's first step (a named service), or ask the orchestrator."""
        async with self.lock(task_id):
            record = await self.get(task_id)
            if record.status is not TaskStatus.PENDING or record.steps:
                return
            if record.service is None:
                self.decisions.submit(task_id)
                return
            self.add_step(record, record.service, None)
            record.status = TaskStatus.RUNNING
            await self.save(record)
            await self.flush(record)

    def add_step(
        self,
        record: TaskRecord,
        service: str,
        step_input: str | None,
        *,
        state: dict[str, Any] | None = None,
        step_id: str | None = None,
        resume: bool = False,
    ) -> StepRecord:
        step = StepRecord(
            step_id=step_id or str(uuid.uuid4()),
            service=service,
            input=None if step_input == record.input else step_input,
            state=state or {},
            resume=resume,
        )
        record.steps.append(step)
        return step

    # -- deciding ---------------------------------------------------------------------

    def _tools(self) -> list[BaseTool]:
        # Tool services take tool calls from agents, not steps of tasks: not offered.
        return [
            ServiceTool.from_service_definition(d) for d in self.registry.all() if d.kind != "tool"
        ]

    async def _decide(self, task_id: str) -> None:
        """Fold new results into the orchestrator's state and apply its next messages.

        Runs without the task's lock (an LLM may take seconds); the outcome is applied under
        it, and only if the task did not finish meanwhile.
        """
        record = await self.tasks.snapshot(task_id)
        if record is None or record.status.finished:
            return
        with tracing.decision(record, type(self.orchestrator).__name__):
            await self._decide_on(record)

    async def _decide_on(self, record: TaskRecord) -> None:
        task_id = record.task_id
        folded = list(record.undecided)
        results = [s.result for s in (record.step(sid) for sid in folded) if s and s.result]
        definition = record.definition
        decided_on = to_jsonable_python(record.state)
        state = dict(record.state)
        try:
            async with asyncio.timeout(self.decision_timeout):
                for result in results:
                    state = await self.orchestrator.add_result_to_state(result, state)
                messages, state = await self.orchestrator.get_next_messages(
                    definition, self._tools(), state
                )
        except TaskFailedError as exc:
            await self.fail(task_id, exc.error)
            return
        except TimeoutError:
            await self.fail(
                task_id, f"the orchestrator did not decide within {self.decision_timeout:g}s"
            )
            return
        except Exception as exc:
            logger.exception("orchestrator failed on task %s", task_id)
            await self.fail(task_id, f"the orchestrator failed: {type(exc).__name__}: {exc}")
            return
        await self._apply_decision(task_id, folded, decided_on, state, messages)

    @retry_on_conflict
    async def _apply_decision(
        self,
        task_id: str,
        folded: list[str],
        decided_on: dict[str, Any],
        state: dict[str, Any],
        messages: list[QueueMessage],
    ) -> None:
        """Apply a decision made on `decided_on` with the results `folded`, unless someone
        (another replica) decided on them meanwhile: then decide again if anything is left."""
        async with self.lock(task_id):
            record = await self.get(task_id)
            if record.status.finished:
                return
            stale = (
                record.undecided[: len(folded)] != folded
                or (not folded and bool(record.steps))  # a first decision was applied already
                or to_jsonable_python(record.state) != decided_on
            )
            if not stale:
                record.state = state
                record.undecided = record.undecided[len(folded) :]
                self._apply(record, messages)
                await self.save(record)
                if record.status.finished:
                    await self.after_finish(record)
                await self.flush(record)
            again = bool(record.undecided) and not record.status.finished
        if again:
            self.decisions.submit(task_id)

    def _apply(self, record: TaskRecord, messages: list[QueueMessage]) -> None:
        for message in messages:
            if is_final(message):
                self.complete(record, TaskResult.from_data(message.data))
                return
            step = TaskDefinition.from_data(message.data)
            self.add_step(record, message.type, step.input, state=step.state, step_id=step.step_id)
        if not record.open_steps() and not record.undecided:
            self.mark_failed(record, "the orchestrator returned no next step and no final answer")
        elif record.status is TaskStatus.PENDING:
            record.status = TaskStatus.RUNNING

    # -- results ----------------------------------------------------------------------

    async def handle_result(self, result: TaskResult) -> None:
        """Record a service's result for one step (matched by step id), then move on.

        A result for a step already closed is a redelivery: nothing is recorded twice, but
        what its first delivery started is finished (a lost connection can cancel a handler
        after it saved and before it went on), so a task never stalls on it.
        """
        context, result.context = result.context, None
        events, result.events = result.events, []
        if result.run_updates and result.step_id is not None:
            await self.runs.in_turn(result.task_id, result.step_id, result.run_updates)
        await self._record_result(result, context, events)

    @retry_on_conflict
    async def _record_result(
        self, result: TaskResult, context: dict[str, Any] | None, events: list[Any]
    ) -> None:
        async with self.lock(result.task_id):
            record = await self.tasks.load(result.task_id)
            if record is None:
                logger.warning("result for unknown task %s ignored", result.task_id)
                return
            step = record.sent_step(result.step_id)
            if step is None or step.status is not StepStatus.PENDING:
                logger.info(
                    "duplicate or unknown result for task %s step %s ignored",
                    result.task_id,
                    result.step_id,
                )
                if record.status.finished:
                    await self.after_finish(record)  # its first delivery may not have got there
                await self.flush(record)
            else:
                result.step_id = step.step_id  # the orchestrator knows steps by their own id
                step.result = result
                step.status = StepStatus.FAILED if result.error else StepStatus.COMPLETED
                step.completed_at = utc_now()
                step.deadline_at = None
                if record.run is not None and record.run.step_id == step.sent_id:
                    record.run = None
                if context is not None and record.session_id is not None:
                    await self.sessions.save_context(record.session_id, step.service, context)
                if not record.status.finished:
                    if record.service is not None:
                        if result.error:
                            self.mark_failed(record, result.error, result)
                        else:
                            self.complete(record, result)
                    else:
                        record.undecided.append(step.step_id)
                # The run's last events come before its end (an append is idempotent).
                await self.save(record, events=streamed_events(events, step_id=step.sent_id))
                if record.status.finished:
                    await self.after_finish(record)
                await self.flush(record)
        if not record.status.finished and record.undecided:
            self.decisions.submit(record.task_id)

    # -- ending -----------------------------------------------------------------------

    @staticmethod
    def complete(record: TaskRecord, result: TaskResult) -> None:
        record.status = TaskStatus.COMPLETED
        record.result = result.model_copy(update={"task_id": record.task_id, "step_id": None})
        record.error = None

    @staticmethod
    def mark_failed(record: TaskRecord, error: str, result: TaskResult | None = None) -> None:
        logger.warning("task %s failed: %s", record.task_id, error)
        record.status = TaskStatus.FAILED
        record.error = error
        record.result = TaskResult(
            task_id=record.task_id,
            result="",
            error=error,
            history=result.history if result is not None else [],
            data={"status": "failed"},
        )

    async def fail(self, task_id: str, error: str) -> None:
        """Fail an unfinished task (its open steps are told to stop)."""
        await self._end(task_id, lambda record: self.mark_failed(record, error), error)

    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task that has not finished; its run stops, late messages are dropped."""

        def cancelled(record: TaskRecord) -> None:
            record.status = TaskStatus.CANCELLED
            record.error = "cancelled"
            record.result = TaskResult(
                task_id=task_id, result="", error="cancelled", data={"status": "cancelled"}
            )

        return await self._end(task_id, cancelled, "cancelled")

    @retry_on_conflict
    async def _end(
        self, task_id: str, end: Callable[[TaskRecord], None], reason: str
    ) -> TaskRecord:
        async with self.lock(task_id):
            record = await self.get(task_id)
            if record.status.finished:
                return record
            services = {s.service for s in record.open_steps()}
            end(record)
            record.run = None
            await self.save(record)
            await self.after_finish(record)
            await self.flush(record)
        for service in sorted(services):
            await self.dispatch.broadcast_cancel(service, task_id, reason)
        return record

    async def after_finish(self, record: TaskRecord) -> None:
        """A task ended: stop its timer, start the next task of its session.

        Called once its end is saved and before `flush` publishes its result and marks it
        done with: a control plane that dies in between leaves it among the tasks a restart
        recovers, which calls this again (it is idempotent), so its session never stays
        held by a task that ended."""
        self.deadlines.clear(record.task_id)
        if record.session_id is not None:
            following = await self.sessions.finished(record.session_id, record.task_id)
            if following is not None:
                self.spawn(self.start(following))

    async def _expire(self, task_id: str) -> None:
        """A deadline passed: fail the task if a step is still open past its deadline."""
        now = utc_now()
        async with self.lock(task_id):
            record = await self.tasks.load(task_id)
            if record is None or record.status.finished:
                return
            late = [s for s in record.open_steps() if s.deadline_at and s.deadline_at <= now]
            if not late:
                self.deadlines.set(task_id, _next_deadline(record))
                return
        step = late[0]
        limit = self.timeout_for(step.service)
        await self.fail(
            task_id,
            f"step {step.step_id} sent to {step.service!r} got no answer"
            + (f" within {limit:g}s" if limit else ""),
        )

    # -- publishing -------------------------------------------------------------------

    async def flush(self, record: TaskRecord) -> None:
        """Publish stored steps and the result the broker has not confirmed; save the marks.

        A failed publish (the broker down, or no queue for the service yet: it may be
        starting) is retried in the background for `publish_retry_for` seconds, then the task
        fails with the reason.
        """
        changed = False
        result_marked = False
        try:
            for step in record.steps:
                if step.published or step.status is not StepStatus.PENDING:
                    continue
                if record.status.finished:
                    step.published = True
                    changed = result_marked = True
                    continue
                await self.dispatch.publish_step(record, step)
                step.published = True
                limit = self.timeout_for(step.service)
                step.deadline_at = utc_now() + timedelta(seconds=limit) if limit else None
                changed = True
            if record.status.finished and not record.result_published:
                try:
                    await self.dispatch.publish_result(record)
                except UnroutableMessageError:
                    logger.error(
                        "the result of task %s has no queue to go to (%r); it is kept in the "
                        "task record only",
                        record.task_id,
                        record.result_key,
                    )
                record.result_published = True
                changed = result_marked = True
        except MessageQueueError as exc:
            logger.warning("publishing for task %s failed (%s); retrying", record.task_id, exc)
            if record.task_id not in self._retrying:
                self._retrying.add(record.task_id)
                self.spawn(self._republish(record.task_id))
        finally:
            if changed and (result_marked or self.marks.delay <= 0):
                await self._save_marks(record)
            elif changed:
                self.marks.hold(record)  # written with the task's next save
                self.deadlines.set(record.task_id, _next_deadline(record))

    async def _write_held_marks(self, task_id: str) -> None:
        """No save of the task came within the delay: write its held publish marks alone."""
        try:
            async with self.lock(task_id):
                if not self.marks.held(task_id):
                    return
                try:
                    record = await self.get(task_id)
                except TaskNotFoundError:
                    self.marks.saved(task_id)  # deleted meanwhile: nothing to mark
                    return
                await self._save_marks(record)  # `save` puts the held marks on it
        except Exception as exc:
            if self.stopping.is_set():  # a restart sends the step again: at least once
                logger.warning("task %s: saving publish marks failed (%s)", task_id, exc)
                return
            logger.warning("task %s: saving publish marks failed (%s); retrying", task_id, exc)
            self.marks.retry(task_id)

    async def _save_marks(self, record: TaskRecord) -> None:
        """Save what `flush` published. If another replica saved the task since it was
        read, its marks go onto what the store holds now (they are facts: the broker took
        those messages), so nothing is published twice for a lost race."""
        try:
            await self.save(record)
            return
        except ConcurrentUpdateError:
            pass
        for _ in range(8):
            fresh = await self.get(record.task_id)
            changed = False
            for step in record.steps:
                now = fresh.step(step.step_id)
                if (
                    step.published
                    and now is not None
                    and now.attempt == step.attempt
                    and not now.published
                    and now.status is StepStatus.PENDING
                ):
                    now.published = True
                    now.deadline_at = step.deadline_at
                    changed = True
            if record.result_published and fresh.status.finished and not fresh.result_published:
                fresh.result_published = True
                changed = True
            if not changed:
                return
            try:
                await self.save(fresh)
                return
            except ConcurrentUpdateError:
                continue
        logger.warning("task %s: publish marks lost to concurrent writes", record.task_id)

    async def _republish(self, task_id: str) -> None:
        """Retry a failed publish with backoff; give up (failing the task) after a while."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.publish_retry_for
        delay = 0.5
        try:
            while True:
                if await _set_within(self.stopping, delay):
                    return  # shutting down: a restart publishes what is still unconfirmed
                error = await self._publish_unconfirmed(task_id, last_try=loop.time() >= give_up_at)
                if error is None:
                    return
                if loop.time() >= give_up_at:
                    await self.fail(task_id, error)
                    return
                delay = min(delay * 2, 10.0)
        finally:
            self._retrying.discard(task_id)

    @retry_on_conflict
    async def _publish_unconfirmed(self, task_id: str, *, last_try: bool) -> str | None:
        """Publish what the broker has not confirmed; the error text if it failed again."""
        async with self.lock(task_id):
            record = await self.get(task_id)
            try:
                for step in record.steps:
                    if not step.published and step.status is StepStatus.PENDING:
                        await self.dispatch.publish_step(record, step)
                        step.published = True
                if record.status.finished and not record.result_published:
                    await self.dispatch.publish_result(record)
                    record.result_published = True
            except MessageQueueError as exc:
                error = f"could not publish for {self.publish_retry_for:g}s: {exc}"
                logger.warning("republishing for task %s failed again: %s", task_id, exc)
                if last_try and record.status.finished:
                    logger.error("task %s: result not delivered: %s", task_id, error)
                    record.result_published = True
                    await self.save(record)
                    return None
                return error
            finally:
                await self.save(record)
            return None

    # -- recovery and waiting ---------------------------------------------------------

    async def recover(self, handled_by: Callable[[str | None], bool] | None = None) -> int:
        """After a restart: start, decide, publish and time what was interrupted.

        Steps published to a queue that does not outlive its process (the embedded queue)
        are published again: they were lost with it. With `handled_by` (control planes as
        replicas), only the tasks whose last replica it accepts: the others' own replicas
        are looking after them.
        """
        resumed = 0
        for record in await self.tasks.to_recover():
            if handled_by is not None and not handled_by(record.handled_by):
                continue
            try:
                resumed += await self._recover_task(record)
            except ConcurrentUpdateError:
                # A live replica wrote it meanwhile: that one is looking after it.
                logger.debug("task %s changed while it was recovered", record.task_id)
        if resumed:
            logger.info("resumed %d task(s) after a restart", resumed)
        return resumed

    async def _recover_task(self, found: TaskRecord) -> int:
        """Recover one task; 1 if something was started, published or decided again."""
        async with self.lock(found.task_id):
            record = await self.get(found.task_id)
            touched = False
            if not self.message_queue.durable:
                touched = await self._resend_lost_steps(record)
            if record.status.finished:
                await self.after_finish(record)
                await self.flush(record)  # its result was never confirmed
                return 1
            if record.status is TaskStatus.PENDING and not record.steps:
                if record.session_id is None or await self._session_turn(record):
                    self.spawn(self.start(record.task_id))
                    return 1
                return 0
            if record.undecided:
                self.decisions.submit(record.task_id)
            resumed = 0
            if touched or any(not s.published for s in record.open_steps()):
                await self.flush(record)
                resumed = 1
            self.deadlines.set(record.task_id, _next_deadline(record))
            return resumed

    async def _resend_lost_steps(self, record: TaskRecord) -> bool:
        """The queue did not outlive its process: send its open steps again. A run with a
        checkpoint continues from it (a new attempt), a released run waits for its input."""
        touched = False
        run = record.run
        for step in record.open_steps():
            if not step.published:
                continue
            if run is not None and run.step_id == step.sent_id:
                if run.released:
                    continue  # nothing was queued for it: an input resumes it
                if run.has_checkpoint:
                    await self.runs.resume(record)
                    touched = True
                    continue
            step.published = False
            touched = True
        return touched

    async def _session_turn(self, record: TaskRecord) -> bool:
        assert record.session_id is not None
        info = await self.sessions.get(record.session_id)
        return info.active == record.task_id

    async def wait_until(
        self,
        task_id: str,
        predicate: Callable[[TaskRecord], bool],
        timeout: float | None,
        *,
        stored: Callable[[dict[str, Any]], bool] | None = None,
    ) -> TaskRecord:
        """The task once `predicate(task)` holds; `TaskTimeoutError` after `timeout` seconds.

        Driven by the task's saves: each one wakes the waiters, who check again. `stored`, a
        test of the stored record's JSON that `predicate` can only pass after, spares the
        waiter a whole record per save (a long-poll wakes at every step of its task).
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changes.setdefault(task_id, asyncio.Event())
                    if stored is None or stored(await self._stored(task_id)):
                        record = await self.read(task_id)
                        if predicate(record):
                            return record
                    await changed.wait()
        except TimeoutError:
            raise TaskTimeoutError(
                f"task {task_id} did not reach the awaited state within {timeout}s"
            ) from None

    async def _stored(self, task_id: str) -> dict[str, Any]:
        body = await self.tasks.stored(task_id)
        if body is None:
            raise TaskNotFoundError(task_id)
        return body

    async def wait(self, task_id: str, timeout: float | None) -> TaskRecord:
        """The task once finished; `TaskTimeoutError` if it is still running after `timeout`."""
        return await self.wait_until(
            task_id, lambda record: record.status.finished, timeout, stored=_stored_finished
        )

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop timers and retries; let decisions and starting tasks finish, briefly."""
        self.stopping.set()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self.deadlines.close()
        self.log.close()
        await self.decisions.close(drain_timeout)
        pending = list(self._background)
        if pending:
            _, still = await asyncio.wait(pending, timeout=drain_timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        # Last: the decisions and publishes drained above may have held marks of their own.
        await self.marks.write_all(drain_timeout)


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event` (a backoff that a shutdown cuts short)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _stored_finished(body: dict[str, Any]) -> bool:
    return TaskStatus(body["status"]).finished


def _next_deadline(record: TaskRecord) -> Any:
    if record.status.finished:
        return None
    deadlines = [s.deadline_at for s in record.open_steps() if s.deadline_at is not None]
    return min(deadlines) if deadlines else None


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task failed", exc_info=task.exception())
