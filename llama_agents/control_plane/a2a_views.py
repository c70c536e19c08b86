"""Our tasks and their event logs as A2A sees them: tasks, status updates, artifacts.

Nothing here is stored: an A2A task is a view of our task record, built when asked, and an A2A
stream is a view of the task's event log. Ids are derived from ours (the result artifact is
`<task id>:result`, an event's message is `<task id>:<sequence>`), so a client that reads the
same task twice, or resubscribes, sees the same objects.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from a2a.helpers import new_data_part, new_text_part
from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from llama_agents.messages.records import TaskRecord
from llama_agents.messages.records import TaskStatus as OurStatus

#: Events of this type (or a subclass) ask for input: A2A's `input-required`.
INPUT_REQUIRED = "InputRequiredEvent"

_STATES: dict[OurStatus, TaskState] = {
    OurStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    OurStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    OurStatus.WAITING_FOR_INPUT: TaskState.TASK_STATE_INPUT_REQUIRED,
    OurStatus.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    OurStatus.FAILED: TaskState.TASK_STATE_FAILED,
    OurStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
}

#: Fields whose text says what an event is about, in the order they are looked for.
_TEXT_FIELDS = ("prefix", "message", "text", "delta", "msg")


def context_of(record: TaskRecord) -> str:
    """A task's A2A context: its session (tasks created over A2A always have one), else
    the task itself (a task of our own API started alone)."""
    return record.session_id or record.task_id


def event_text(data: dict[str, Any]) -> str:
    """The text an event carries (its question, message or delta), else nothing."""
    for name in _TEXT_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def agent_message(
    task_id: str, context_id: str, message_id: str, text: str, data: Any = None
) -> Message:
    """A message from the agent: its text, and the structured data behind it if any."""
    parts: list[Part] = []
    if text:
        parts.append(new_text_part(text))
    if data is not None:
        parts.append(new_data_part(data))
    return Message(
        message_id=message_id,
        role=Role.ROLE_AGENT,
        task_id=task_id,
        context_id=context_id,
        parts=parts,
    )


def _status(state: TaskState, message: Message | None, at: datetime | str | None) -> TaskStatus:
    status = TaskStatus(state=state)
    if message is not None:
        status.message.CopyFrom(message)
    if at is not None:
        status.timestamp.FromDatetime(datetime.fromisoformat(at) if isinstance(at, str) else at)
    return status


def result_artifact(record: TaskRecord) -> Artifact | None:
    """The task's result as an artifact: its text, and its JSON when the result is not
    plain text (a workflow's structured result)."""
    result = record.result
    if record.status is not OurStatus.COMPLETED or result is None:
        return None
    value = result.data.get("result")
    parts = [new_text_part(result.result)]
    if value is not None and not isinstance(value, str):
        parts.append(new_data_part(value))
    return Artifact(artifact_id=f"{record.task_id}:result", name="result", parts=parts)


def status_message(record: TaskRecord) -> Message | None:
    """What the task's status says in words: the question it waits on, or why it failed."""
    context_id = context_of(record)
    if record.status is OurStatus.WAITING_FOR_INPUT and record.run and record.run.prompt:
        data = record.run.prompt.get("data") or {}
        return agent_message(
            record.task_id,
            context_id,
            f"{record.task_id}:prompt",
            event_text(data) or json.dumps(data),
            {"type": record.run.prompt.get("type"), "data": data},
        )
    if record.status in (OurStatus.FAILED, OurStatus.CANCELLED) and record.error:
        return agent_message(record.task_id, context_id, f"{record.task_id}:error", record.error)
    return None


def task_view(record: TaskRecord) -> Task:
    """Our task as an A2A task: its state, its question or error, its result, its input."""
    context_id = context_of(record)
    task = Task(
        id=record.task_id,
        context_id=context_id,
        status=_status(_STATES[record.status], status_message(record), record.updated_at),
        history=[
            Message(
                message_id=f"{record.task_id}:input",
                role=Role.ROLE_USER,
                task_id=record.task_id,
                context_id=context_id,
                parts=[new_text_part(record.input)],
            )
        ],
    )
    artifact = result_artifact(record)
    if artifact is not None:
        task.artifacts.append(artifact)
    task.metadata.update({"status": record.status.value, "service": record.service or ""})
    return task


def asks_for_input(body: dict[str, Any]) -> bool:
    """Whether a logged event asks for input (an `InputRequiredEvent` or a subclass)."""
    return INPUT_REQUIRED in (body.get("types") or [body.get("type")])


def event_update(
    task_id: str, context_id: str, sequence: int, body: dict[str, Any]
) -> TaskStatusUpdateEvent:
    """One logged event of a running task as an A2A status update: `input-required` with
    the question for an event that asks for input, else `working` with the event."""
    data = body.get("data") or {}
    asks = asks_for_input(body)
    text = event_text(data)
    message = agent_message(
        task_id,
        context_id,
        f"{task_id}:{sequence}",
        text or (json.dumps(data) if asks else ""),
        {"type": body.get("type"), "data": data},
    )
    state = TaskState.TASK_STATE_INPUT_REQUIRED if asks else TaskState.TASK_STATE_WORKING
    update = TaskStatusUpdateEvent(
        task_id=task_id,
        context_id=context_id,
        status=_status(state, message, body.get("created_at")),
    )
    update.metadata.update(
        {"sequence": sequence, "type": body.get("type") or "", "types": body.get("types") or []}
    )
    return update


def working(task_id: str, context_id: str) -> TaskStatusUpdateEvent:
    """The update that says a message was taken and the task works on it."""
    return TaskStatusUpdateEvent(
        task_id=task_id,
        context_id=context_id,
        status=_status(TaskState.TASK_STATE_WORKING, None, datetime.now().astimezone()),
    )


def final_events(record: TaskRecord) -> list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent]:
    """A finished task's last events: its result artifact (if it completed), then its final
    status."""
    context_id = context_of(record)
    events: list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent] = []
    artifact = result_artifact(record)
    if artifact is not None:
        events.append(
            TaskArtifactUpdateEvent(
                task_id=record.task_id,
                context_id=context_id,
                artifact=artifact,
                last_chunk=True,
            )
        )
    events.append(
        TaskStatusUpdateEvent(
            task_id=record.task_id,
            context_id=context_id,
            status=_status(_STATES[record.status], status_message(record), record.updated_at),
        )
    )
    return events
