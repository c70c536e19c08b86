"""Reopening the task a replayed dead letter belonged to.

A step whose message was dead-lettered failed its task (the service's dead-letter hook
reported it). Replaying that message is the operator saying "try again": before the message
goes back, its step is made pending again (with a fresh deadline, so a replay that goes
nowhere fails the task again) and its task running, so the step's answer is recorded and the
task completes. Letters of other kinds (results on their way to the control plane, tool
calls) need nothing here: the step they answer is still open.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from llama_agents.control_plane.conflicts import retry_on_conflict
from llama_agents.control_plane.event_log import reopened_body
from llama_agents.control_plane.state import NewEvent
from llama_agents.control_plane.tasks import TaskManager
from llama_agents.errors import LlamaAgentsError
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.messages import ActionTypes, TaskDefinition
from llama_agents.messages.envelope import CONTROL_PLANE_PUBLISHER, utc_now
from llama_agents.messages.records import StepStatus, TaskStatus

logger = logging.getLogger("llama_agents.control_plane")

#: How a dead-lettered step's failure reads (see `BaseService._on_dead_letter`).
DEAD_LETTERED = "dead-lettered"


def step_of(letter: DeadLetter) -> tuple[str, str] | None:
    """The (task id, sent step id) of a control plane's step carried by `letter`, if it is one."""
    try:
        message = letter.message()
        if (
            message.action is not ActionTypes.NEW_TASK
            or message.publisher_id != CONTROL_PLANE_PUBLISHER
            or message.reply_to is not None
        ):
            return None
        task = TaskDefinition.from_data(message.data)
    except LlamaAgentsError:
        return None
    if task.step_id is None:
        return None
    return task.task_id, task.step_id


async def reopen(manager: TaskManager, letters: list[DeadLetter]) -> list[str]:
    """Reopen the tasks whose steps `letters` carry, where their dead letter failed them;
    return the ids of the tasks reopened."""
    reopened: list[str] = []
    for letter in letters:
        target = step_of(letter)
        if target is not None and await _reopen_step(manager, *target):
            reopened.append(target[0])
    return reopened


@retry_on_conflict
async def _reopen_step(manager: TaskManager, task_id: str, sent_id: str) -> bool:
    async with manager.lock(task_id):
        record = await manager.tasks.load(task_id)
        if record is None:
            return False
        step = record.sent_step(sent_id)
        error = step.result.error if step is not None and step.result is not None else None
        if step is None or step.status is not StepStatus.FAILED or not error:
            return False
        if not error.startswith(DEAD_LETTERED):
            return False
        if record.status.finished and record.error != error:
            return False  # it ended for another reason (cancelled, or an orchestrator's call)
        step.status = StepStatus.PENDING
        step.result = None
        step.completed_at = None
        limit = manager.timeout_for(step.service)
        step.deadline_at = utc_now() + timedelta(seconds=limit) if limit else None
        events: list[NewEvent] = []
        if record.status is TaskStatus.FAILED:
            record.status = TaskStatus.RUNNING
            record.error = None
            record.result = None
            record.result_published = False  # its final result goes out again when it ends
            record.finished_at = None
            if record.finished_event is not None:
                # Its log says why the end it logged is undone; its next end logs anew.
                record.reopened += 1
                record.finished_event = None
                events.append(
                    NewEvent(
                        reopened_body(sent_id, "dead letter replayed"),
                        dedupe_key=f"reopened:{record.reopened}",
                    )
                )
        logger.info("task %s step %s reopened for a dead-letter replay", task_id, sent_id)
        await manager.save(record, events=events)
        return True
