"""`WorkflowService`: any llama-index `Workflow` served on the mesh; each step is one run.

The run streams its events to the control plane as they happen, checkpoints its context after
every step (but the one that ends it, whose result carries what is left) and whenever it
waits, and is released from memory after `idle_release_s` of waiting for input: the answer,
whenever it comes, resumes it on whichever replica takes it.
At most `max_concurrent_runs` runs are held per replica (its consumer's prefetch); more wait
in the broker's queue, not in memory.

Steps must be idempotent: a step that was running when its replica died runs again on
another one (completed steps do not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from llama_index.core.llms import ChatMessage
from workflows import Workflow
from workflows.events import Event

from llama_agents.errors import ConfigurationError, ConfigurationTypeError, EventRejectedError
from llama_agents.message_queues.base import CONTROL_PLANE_MESSAGE_TYPE, BaseMessageQueue
from llama_agents.messages import ActionTypes, QueueMessage, ServiceDefinition, TaskDefinition
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER
from llama_agents.messages.payloads import TaskResult
from llama_agents.messages.runs import RunInput, RunUpdate
from llama_agents.services.base import BaseService, failed_result
from llama_agents.services.workflow_codec import WorkflowCodec
from llama_agents.services.workflow_run import RunEnd, RunOutcome, WorkflowRun
from llama_agents.services.workflow_steps import remember_steps

logger = logging.getLogger("llama_agents.services.workflow")


class WorkflowService(BaseService):
    """Serves `workflow`: every task (or orchestrator step) sent to `service_name` is a run.

    Args:
        workflow: any llama-index `Workflow` (agents included).
        message_queue: the fabric.
        service_name, description: its name (and queue) and what it is good for.
        max_concurrent_runs: runs one replica holds at once; more wait in the queue.
        idle_release_s: seconds a run waiting for input stays in memory (None: forever).
        event_coalesce_s: window within which streamed events are sent together (token
            deltas merged); 0 sends each at once.
        additional_events: events the workflow waits for with `ctx.wait_for_event` (or
            otherwise accepts) that its steps do not declare, so they can be sent in.
        serializable_types: classes its context holds besides its events, for checkpoints.
        text_field: the start event field a task's text input fills (default `user_msg` for
            agents, `input` otherwise).
        step_timeout: seconds a run may go without a sign of life before its task fails
            (None: the control plane's default).
    """

    service_kind = "workflow"

    def __init__(
        self,
        workflow: Workflow,
        message_queue: BaseMessageQueue,
        service_name: str = "default_workflow",
        description: str = "Runs a workflow.",
        *,
        max_concurrent_runs: int = 10,
        idle_release_s: float | None = 60.0,
        event_coalesce_s: float = 0.05,
        additional_events: Iterable[type[Event]] = (),
        serializable_types: Iterable[type[Any]] = (),
        step_timeout: float | None = None,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
        text_field: str | None = None,
    ) -> None:
        if not isinstance(workflow, Workflow):
            raise ConfigurationTypeError(
                f"workflow must be a llama-index Workflow, got {type(workflow).__name__}"
            )
        if idle_release_s is not None and idle_release_s < 0:
            raise ConfigurationError(f"idle_release_s must be >= 0, got {idle_release_s}")
        if event_coalesce_s < 0:
            raise ConfigurationError(f"event_coalesce_s must be >= 0, got {event_coalesce_s}")
        super().__init__(
            message_queue,
            service_name,
            description,
            prompt=prompt,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_runs,
            step_timeout=step_timeout,
        )
        remember_steps(workflow)  # its runs no longer rebuild the step table each time
        self.workflow = workflow
        self.codec = WorkflowCodec(
            workflow,
            additional_events=additional_events,
            serializable_types=serializable_types,
            text_field=text_field,
        )
        self.idle_release_s = idle_release_s
        self.event_coalesce_s = event_coalesce_s
        self._runs: dict[str, WorkflowRun] = {}
        self._stopping = False  # draining: runs that wait are released at once

    @property
    def max_concurrent_runs(self) -> int:
        return self.max_concurrent_tasks

    @property
    def service_definition(self) -> ServiceDefinition:
        definition = super().service_definition
        definition.workflow = self.codec.describe()
        return definition

    def status(self) -> dict[str, Any]:
        status = super().status()
        status["runs"] = {
            "held": len(self._runs),
            "waiting": sum(1 for run in self._runs.values() if run.waiting),
        }
        return status

    # -- a step is a run --------------------------------------------------------------

    async def handle_step(self, message: QueueMessage, task: TaskDefinition) -> None:
        """Run (or resume) the workflow for one step; report its result when it ends.

        Returns without a result when the run was released (it waits for input) or
        cancelled: the caller acknowledges the step, and a resume is a new step.
        """
        caller = message.reply_to
        # Only the control plane follows runs (stores events, resumes released runs): a step
        # a caller sent directly just gets its answer.
        followed = caller is None and message.publisher_id == CONTROL_PLANE_PUBLISHER
        run = WorkflowRun(
            self.workflow,
            self.codec,
            task,
            report=self._report if followed else _ignore,
            holder=self.control_address,
            idle_release_s=self.idle_release_s if followed else None,
            coalesce_s=self.event_coalesce_s,
        )
        self._runs[task.task_id] = run
        if self._stopping:
            run.release_when_waiting()
        try:
            outcome = await run.run()
        except Exception as exc:  # could not even start (a start event that does not fit)
            logger.warning("%s could not run task %s: %s", self.service_name, task.task_id, exc)
            outcome = RunOutcome(RunEnd.FAILED, error=f"{type(exc).__name__}: {exc}", exception=exc)
        finally:
            self._runs.pop(task.task_id, None)
        if outcome.end in (RunEnd.RELEASED, RunEnd.CANCELLED):
            return
        result = await self.result_of(task, outcome)
        if followed:
            result.events = outcome.events
            result.run_updates = run.next_sequence
            if task.session_id is not None and outcome.context is not None:
                result.context = await run.snapshots.take(outcome.context)
        await self.send_result(message, result)

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        """Run the workflow on one task in this process and return its result (direct use:
        nothing is reported, nothing released)."""
        run = WorkflowRun(
            self.workflow,
            self.codec,
            task,
            report=_ignore,
            holder=self.control_address,
            idle_release_s=None,
            coalesce_s=0,
        )
        return await self.result_of(task, await run.run())

    async def result_of(self, task: TaskDefinition, outcome: RunOutcome) -> TaskResult:
        """The step's result: the run's StopEvent result as text and as JSON."""
        if outcome.end is RunEnd.FAILED:
            return failed_result(task, outcome.error or "the run failed")
        text, value = self.codec.encode_result(outcome.result)
        return TaskResult(
            task_id=task.task_id, step_id=task.step_id, result=text, data={"result": value}
        )

    async def _report(self, update: RunUpdate) -> None:
        await self.publish(
            QueueMessage(
                type=CONTROL_PLANE_MESSAGE_TYPE,
                action=ActionTypes.RUN_UPDATE,
                data=update.model_dump(mode="json"),
            )
        )

    # -- inputs and cancels at this replica's address ---------------------------------

    async def on_run_input(self, run_input: RunInput) -> None:
        run = self._runs.get(run_input.task_id)
        try:
            held = run is not None and run.send_input(run_input)
        except EventRejectedError as exc:
            logger.warning("task %s: input %s rejected: %s", run_input.task_id, run_input.type, exc)
            return
        if not held:
            await super().on_run_input(run_input)

    async def deregister_from_message_queue(self) -> None:
        """Stop consuming; runs waiting for input are released (checkpointed, their steps
        acknowledged), and so is every run that starts waiting while the replica drains:
        stopping a replica never waits on a person."""
        self._stopping = True
        try:
            waiting = [run for run in self._runs.values() if run.waiting]
            for run in self._runs.values():
                if not run.waiting:
                    run.release_when_waiting()  # the others are released here, awaited
            await asyncio.gather(*(run.release() for run in waiting), return_exceptions=True)
            await super().deregister_from_message_queue()
        finally:
            self._stopping = False

    def cancel_run(self, task_id: str) -> None:
        run = self._runs.get(task_id)
        if run is not None:
            run.cancel()


async def _ignore(update: RunUpdate) -> None:
    """Runs called as tools report only their answer, to their caller."""
