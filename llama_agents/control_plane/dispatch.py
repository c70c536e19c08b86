"""How the control plane's decisions reach the broker: step messages, results, inputs, cancels.

A step is stored before it is published and rebuilt from its record here, so the task's
input is stored once and a step saved but never confirmed can be sent again after a crash.
A step that continues a run carries the run's checkpoint and the inputs it has not taken
yet; a session's step carries the context the session's previous run on that service left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from llama_agents import tracing
from llama_agents.errors import UnroutableMessageError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import ActionTypes, QueueMessage, TaskDefinition
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER
from llama_agents.messages.records import RunState, StepRecord, TaskRecord
from llama_agents.messages.runs import RunCancel, RunInput, RunResume, StreamedEvent

if TYPE_CHECKING:
    from llama_agents.control_plane.sessions import SessionManager
    from llama_agents.control_plane.state import StateStore

logger = logging.getLogger("llama_agents.control_plane")


def broadcast_key(service: str) -> str:
    """The routing key every replica of `service` listens on (cancels)."""
    return f"{service}.broadcast"


class Dispatcher:
    """Builds and publishes what the control plane sends."""

    def __init__(
        self, queue: BaseMessageQueue, store: StateStore, sessions: SessionManager
    ) -> None:
        self.queue = queue
        self.store = store
        self.sessions = sessions

    async def step_message(self, record: TaskRecord, step: StepRecord) -> QueueMessage:
        """The NEW_TASK message for `step`, as it is sent now."""
        resume: RunResume | None = None
        if step.resume:
            checkpoint = await self.store.load_checkpoint(record.task_id)
            run = record.run
            current = run is not None and run.step_id == step.sent_id
            inputs = list(run.inputs) if run is not None and current else []
            prompt = run.prompt if run is not None and current else None
            resume = RunResume(
                checkpoint=checkpoint,
                inputs=inputs,
                prompt=StreamedEvent.model_validate(prompt) if prompt else None,
            )
        elif record.session_id is not None:
            context = await self.sessions.context(record.session_id, step.service)
            if context is not None:
                resume = RunResume(checkpoint=context)
        direct = record.service is not None and step.input is None
        definition = TaskDefinition(
            input=record.input if step.input is None else step.input,
            task_id=record.task_id,
            step_id=step.sent_id,
            state=step.state,
            agent_id=record.agent_id,
            start_event=record.start_event if direct else None,
            session_id=record.session_id,
            resume=resume,
        )
        return QueueMessage(
            id_=step.sent_id,
            type=step.service,
            action=ActionTypes.NEW_TASK,
            publisher_id=CONTROL_PLANE_PUBLISHER,
            data=definition.model_dump(mode="json"),
        )

    async def publish_step(self, record: TaskRecord, step: StepRecord) -> None:
        with tracing.task_context(record.trace_context):
            await self.queue.publish(await self.step_message(record, step))

    async def publish_result(self, record: TaskRecord) -> None:
        """Publish the task's final result as its `result_key` (none when that is None)."""
        assert record.result is not None
        if record.result_key is None:
            return
        with tracing.task_context(record.trace_context):
            await self.queue.publish(
                QueueMessage(
                    type=record.result_key,
                    action=ActionTypes.COMPLETED_TASK,
                    publisher_id=CONTROL_PLANE_PUBLISHER,
                    data=record.result.model_dump(mode="json"),
                )
            )

    async def send_inputs(self, run: RunState, inputs: list[RunInput]) -> bool:
        """Send inputs to the replica holding the run; False when it is gone."""
        assert run.holder is not None
        for run_input in inputs:
            run_input.for_step_id = run.step_id
            try:
                await self.queue.publish(
                    QueueMessage(
                        type=run.holder,
                        action=ActionTypes.RUN_INPUT,
                        publisher_id=CONTROL_PLANE_PUBLISHER,
                        data=run_input.model_dump(mode="json"),
                    )
                )
            except UnroutableMessageError:
                return False
            run.delivered.append(run_input.input_id)
        return True

    async def broadcast_cancel(self, service: str, task_id: str, reason: str) -> None:
        """Tell every live replica of `service` to drop the task (nobody listening is fine)."""
        try:
            await self.queue.publish(
                QueueMessage(
                    type=broadcast_key(service),
                    action=ActionTypes.RUN_CANCEL,
                    publisher_id=CONTROL_PLANE_PUBLISHER,
                    data=RunCancel(task_id=task_id, reason=reason).model_dump(mode="json"),
                )
            )
        except UnroutableMessageError:
            pass
        except Exception as exc:
            logger.warning("could not tell %s that task %s ended: %s", service, task_id, exc)
