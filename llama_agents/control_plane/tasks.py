"""The task lifecycle: create, step, record results, finish, recover after a crash.

Rules that keep tasks safe (docs/architecture.md#the-delivery-contract):
- a step is saved before it is published, and marked once the broker confirmed it; on
  start, steps saved but never confirmed are published again;
- one result per step: a redelivered or duplicate result is ignored;
- one lock per task, so concurrent results of one task never lose an update;
- the orchestrator's decision (its new state, with any LLM answer) is saved together with
  the steps it produced, so a resumed task never asks the orchestrator (or its LLM) again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from llama_index.core.tools import BaseTool

from llama_agents.control_plane.events import ControlPlaneEvent, EventHub
from llama_agents.control_plane.models import (
    NewTask,
    StepRecord,
    StepStatus,
    TaskRecord,
    TaskStatus,
)
from llama_agents.control_plane.store import ControlPlaneStore
from llama_agents.errors import (
    ControlPlaneError,
    MessageQueueError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
)
from llama_agents.errors import TaskExistsError as TaskExistsError  # its old import path
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.messages.envelope import utc_now
from llama_agents.orchestrators.base import CONTROL_PLANE_PUBLISHER, BaseOrchestrator, is_final
from llama_agents.orchestrators.service_tool import ServiceTool

logger = logging.getLogger("llama_agents.control_plane")

#: How long a failed publish is retried in the background before waiting for a restart.
_REPUBLISH_BACKOFF_MAX = 30.0


class TaskManager:
    """Moves tasks through their steps; the control plane's core, without HTTP."""

    def __init__(
        self,
        store: ControlPlaneStore,
        orchestrator: BaseOrchestrator,
        message_queue: BaseMessageQueue,
    ) -> None:
        self.store = store
        self.orchestrator = orchestrator
        self.message_queue = message_queue
        self._services: dict[str, ServiceDefinition] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._changes: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.Task[None]] = set()
        self.events = EventHub()

    # -- services ---------------------------------------------------------------------

    async def load_services(self) -> None:
        self._services = {d.service_name: d for d in await self.store.all_services()}

    async def register_service(self, definition: ServiceDefinition) -> None:
        await self.store.save_service(definition)
        self._services[definition.service_name] = definition
        self.events.publish(
            ControlPlaneEvent(kind="service", action="registered", service=definition)
        )

    async def deregister_service(self, name: str) -> bool:
        existed = await self.store.delete_service(name)
        removed = self._services.pop(name, None) is not None or existed
        if removed:
            self.events.publish(
                ControlPlaneEvent(kind="service", action="deregistered", service_name=name)
            )
        return removed

    def services(self) -> list[ServiceDefinition]:
        return sorted(self._services.values(), key=lambda d: d.service_name)

    def service(self, name: str) -> ServiceDefinition | None:
        return self._services.get(name)

    # -- tasks ------------------------------------------------------------------------

    def _lock(self, task_id: str) -> asyncio.Lock:
        lock = self._locks.get(task_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[task_id] = lock
        return lock

    async def get(self, task_id: str) -> TaskRecord:
        record = await self.store.load_task(task_id)
        if record is None:
            raise TaskNotFoundError(task_id)
        return record

    async def create(self, new_task: NewTask) -> TaskRecord:
        """Store a new task and start it in the background; return it at once."""
        definition = TaskDefinition.model_validate(new_task.model_dump(exclude={"result_key"}))
        async with self._lock(definition.task_id):
            if await self.store.load_task(definition.task_id) is not None:
                raise TaskExistsError(f"a task with id {definition.task_id!r} already exists")
            record = TaskRecord(
                task_id=definition.task_id,
                input=definition.input,
                definition=definition,
                result_key=new_task.result_key,
            )
            await self._save(record)
        self._spawn(self._start(record.task_id))
        return record

    async def _start(self, task_id: str) -> None:
        async with self._lock(task_id):
            record = await self.get(task_id)
            if record.status is TaskStatus.PENDING and not record.steps:
                await self._advance(record)
                await self._save(record)
            await self._publish_pending(record)

    async def handle_result(self, result: TaskResult) -> None:
        """Record a service's result for one step, then move the task on."""
        async with self._lock(result.task_id):
            record = await self.store.load_task(result.task_id)
            if record is None:
                logger.warning("result for unknown task %s ignored", result.task_id)
                return
            step = self._step_for(record, result)
            if step is None or step.status is not StepStatus.PENDING:
                logger.info(
                    "duplicate or unknown result for task %s step %s ignored",
                    result.task_id,
                    result.step_id,
                )
                # Still flush what may be unpublished: this redelivery may be our retry.
                await self._publish_pending(record)
                return
            step.result = result
            step.status = StepStatus.FAILED if result.error else StepStatus.COMPLETED
            step.completed_at = utc_now()
            if not record.status.finished:
                try:
                    record.state = await self.orchestrator.add_result_to_state(result, record.state)
                except Exception as exc:
                    self._fail(record, _describe(exc, "could not record a step result"))
                else:
                    await self._advance(record)
            await self._save(record)
            await self._publish_pending(record)

    @staticmethod
    def _step_for(record: TaskRecord, result: TaskResult) -> StepRecord | None:
        if result.step_id is not None:
            return record.step(result.step_id)
        # A service that does not echo step ids: accept it if only one step is open.
        pending = [s for s in record.steps if s.status is StepStatus.PENDING]
        return pending[0] if len(pending) == 1 else None

    async def _advance(self, record: TaskRecord) -> None:
        """Ask the orchestrator for the next messages; record them (not yet published)."""
        # Tool services take tool calls from agents, not steps of tasks: not offered.
        tools: list[BaseTool] = [
            ServiceTool.from_service_definition(d) for d in self.services() if d.kind != "tool"
        ]
        try:
            messages, state = await self.orchestrator.get_next_messages(
                record.definition, tools, record.state
            )
        except TaskFailedError as exc:
            self._fail(record, exc.error)
            return
        except Exception as exc:
            logger.exception("orchestrator failed on task %s", record.task_id)
            self._fail(record, _describe(exc, "the orchestrator failed"))
            return
        record.state = state
        for message in messages:
            if is_final(message):
                self._complete(record, TaskResult.from_data(message.data))
                return
            self._add_step(record, message)
        open_steps = [s for s in record.steps if s.status is StepStatus.PENDING]
        if not open_steps:
            self._fail(record, "the orchestrator returned no next step and no final answer")
        elif record.status is TaskStatus.PENDING:
            record.status = TaskStatus.RUNNING

    @staticmethod
    def _add_step(record: TaskRecord, message: QueueMessage) -> None:
        step = TaskDefinition.from_data(message.data)
        if step.step_id is None:
            raise ControlPlaneError(
                f"orchestrator sent a step to {message.type!r} without a step_id; "
                "build steps with llama_agents.orchestrators.base.step_message"
            )
        message.publisher_id = CONTROL_PLANE_PUBLISHER
        record.steps.append(
            StepRecord(
                step_id=step.step_id,
                service=message.type,
                input=step.input,
                message=message.model_dump(mode="json"),
            )
        )

    @staticmethod
    def _complete(record: TaskRecord, result: TaskResult) -> None:
        record.status = TaskStatus.COMPLETED
        record.result = result
        record.error = None

    @staticmethod
    def _fail(record: TaskRecord, error: str) -> None:
        logger.warning("task %s failed: %s", record.task_id, error)
        record.status = TaskStatus.FAILED
        record.error = error
        record.result = TaskResult(
            task_id=record.task_id, result="", error=error, data={"status": "failed"}
        )

    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task that has not finished; its later step results are recorded only."""
        async with self._lock(task_id):
            record = await self.get(task_id)
            if not record.status.finished:
                record.status = TaskStatus.CANCELLED
                record.error = "cancelled"
                record.result = TaskResult(
                    task_id=task_id, result="", error="cancelled", data={"status": "cancelled"}
                )
                await self._save(record)
                await self._publish_pending(record)
        return record

    # -- publishing -------------------------------------------------------------------

    async def _publish_pending(self, record: TaskRecord) -> None:
        """Publish what is not confirmed yet; on a broker failure, retry in the background."""
        try:
            await self._flush(record)
        except MessageQueueError as exc:
            logger.warning("publishing for task %s failed (%s); retrying", record.task_id, exc)
            self._spawn(self._republish_later(record.task_id), drain=False)

    async def _flush(self, record: TaskRecord) -> None:
        """Publish steps not yet confirmed, then the result; save what the broker took."""
        changed = False
        try:
            for step in record.steps:
                if not step.published and step.status is StepStatus.PENDING:
                    if not record.status.finished:
                        await self.message_queue.publish(QueueMessage.model_validate(step.message))
                    step.published = True
                    changed = True
            if record.status.finished and not record.result_published:
                await self._publish_result(record)
                record.result_published = True
                changed = True
        finally:
            if changed:
                await self._save(record)

    async def _publish_result(self, record: TaskRecord) -> None:
        assert record.result is not None
        await self.message_queue.publish(
            QueueMessage(
                type=record.result_key,
                action=ActionTypes.COMPLETED_TASK,
                publisher_id=CONTROL_PLANE_PUBLISHER,
                data=record.result.model_dump(mode="json"),
            )
        )

    async def _republish_later(self, task_id: str) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(delay)  # backoff between retries, not a wait for an event
            async with self._lock(task_id):
                record = await self.get(task_id)
                try:
                    await self._flush(record)
                    return
                except MessageQueueError as exc:
                    logger.warning("republishing for task %s failed again: %s", task_id, exc)
            delay = min(delay * 2, _REPUBLISH_BACKOFF_MAX)

    # -- recovery and waiting ---------------------------------------------------------

    async def recover(self) -> int:
        """After a restart: restart tasks never started, re-send what was never confirmed."""
        resumed = 0
        for record in await self.store.all_tasks():
            needs_start = record.status is TaskStatus.PENDING and not record.steps
            unconfirmed = any(
                not s.published and s.status is StepStatus.PENDING for s in record.steps
            )
            unsent_result = record.status.finished and not record.result_published
            if needs_start:
                self._spawn(self._start(record.task_id))
                resumed += 1
            elif unconfirmed or unsent_result:
                async with self._lock(record.task_id):
                    fresh = await self.get(record.task_id)
                    await self._publish_pending(fresh)
                resumed += 1
        if resumed:
            logger.info("resumed %d task(s) after a restart", resumed)
        return resumed

    async def _save(self, record: TaskRecord) -> None:
        """Save a task and wake whoever waits for it to change."""
        await self.store.save_task(record)
        event = self._changes.pop(record.task_id, None)
        if event is not None:
            event.set()
        if self.events.has_subscribers:
            self.events.publish(
                ControlPlaneEvent(kind="task", action="updated", task=record.summary())
            )

    async def wait_until(
        self,
        task_id: str,
        predicate: Callable[[TaskRecord], bool],
        timeout: float | None,
    ) -> TaskRecord:
        """The task once `predicate(task)` holds; `TaskTimeoutError` (a `TimeoutError`)
        after `timeout` seconds.

        Driven by the task's saves: each one wakes the waiters, who check again.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changes.setdefault(task_id, asyncio.Event())
                    record = await self.get(task_id)
                    if predicate(record):
                        return record
                    await changed.wait()
        except TimeoutError:
            raise TaskTimeoutError(
                f"task {task_id} did not reach the state waited for within {timeout}s"
            ) from None

    async def wait(self, task_id: str, timeout: float | None) -> TaskRecord:
        """The task once finished; `TaskTimeoutError` if it is still running after `timeout`."""
        return await self.wait_until(task_id, lambda record: record.status.finished, timeout)

    def _spawn(self, coro: Coroutine[Any, Any, None], *, drain: bool = True) -> None:
        """Run `coro` in the background; `close()` lets `drain` tasks finish first."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        if not drain:
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Let starting tasks finish their publish, then stop background work.

        Retries waiting for the broker are cancelled: a restart picks them up from the store.
        """
        for task in list(self._retries):
            task.cancel()
        pending = list(self._background)
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=drain_timeout)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)


def _describe(exc: BaseException, what: str) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task failed", exc_info=task.exception())
