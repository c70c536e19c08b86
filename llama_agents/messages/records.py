"""What the control plane's HTTP API answers with: task and service records, summaries,
statuses, event-log entries, sessions, the events it pushes, and the limits a client must know.

They live here, beside the payloads, rather than in `control_plane/`: the SDK and the CLI read
them, and importing them must not load the server (FastAPI, uvicorn, aio-pika, llama-index).
This module imports only pydantic and `llama_agents.messages`.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from llama_agents.messages.envelope import HUMAN_MESSAGE_TYPE, utc_now
from llama_agents.messages.payloads import ServiceDefinition, TaskDefinition, TaskResult
from llama_agents.messages.runs import RunInput

#: The longest a `GET /tasks/{id}/result?wait=` long-poll may hold a request.
MAX_WAIT_SECONDS = 300.0

#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0

#: How much of a task's input listings and summaries show.
SUMMARY_INPUT_CHARS = 200


def shorten(text: str, limit: int = SUMMARY_INPUT_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis and the full length when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def prompt_text(prompt: dict[str, Any] | None) -> str:
    """What a waiting run asks, from the event that asked (an `InputRequiredEvent`'s
    `prefix`, say): its first text field, else its data as JSON, else its type; "" for none.
    """
    if not prompt:
        return ""
    data = prompt.get("data")
    if isinstance(data, dict):
        for name in ("prefix", "prompt", "question", "message"):
            value = data.get(name)
            if isinstance(value, str) and value:
                return value
        if data:
            return json.dumps(data, ensure_ascii=False, default=str)
    return str(prompt.get("type") or "input")


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


FINISHED_STATUSES = frozenset(s.value for s in TaskStatus if s.finished)
UNFINISHED_STATUSES = frozenset(s.value for s in TaskStatus if not s.finished)


class StepStatus(StrEnum):
    """Where one step (one service's piece of a task) is."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


#: Separates a step's id from its attempt number in the id a service sees.
ATTEMPT_SEPARATOR = "~"


def split_step_id(sent_id: str) -> tuple[str, int]:
    """The step id and attempt a sent step id names (`abc` -> (abc, 1), `abc~3` -> (abc, 3))."""
    step_id, separator, attempt = sent_id.rpartition(ATTEMPT_SEPARATOR)
    if separator and attempt.isdigit():
        return step_id, int(attempt)
    return sent_id, 1


class StepRecord(BaseModel):
    """One step sent to a service.

    The message is built from these fields when the step is published (again, after a
    crash before the broker confirmed it), so the task's input is stored once: `input` is
    None when the step's input is the task's. `resume` marks a step that continues the task's
    checkpointed run, whose checkpoint is read from the store when it is sent.
    """

    step_id: str
    service: str
    input: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    resume: bool = False
    #: Sent again (its run resumed, or it came back unrun) under the same step id: answers
    #: to an earlier attempt are ignored, the orchestrator only ever sees `step_id`.
    attempt: int = 1
    #: Times a service handed this step back unrun (see `MAX_HANDBACKS`).
    handbacks: int = 0
    published: bool = False
    status: StepStatus = StepStatus.PENDING
    result: TaskResult | None = None
    created_at: datetime = Field(default_factory=utc_now)
    completed_at: datetime | None = None
    deadline_at: datetime | None = None

    @property
    def sent_id(self) -> str:
        """The id the service sees: the step id, with the attempt after the first."""
        if self.attempt == 1:
            return self.step_id
        return f"{self.step_id}{ATTEMPT_SEPARATOR}{self.attempt}"


class RunState(BaseModel):
    """The task's workflow run while a service runs it (or it waits, released).

    `step_id` is the sent id of the step attempt that runs it. `holder` is the address of
    the replica that holds the run in memory, None while no replica does (not started yet,
    or released while it waited). `inputs` were sent into the run and are not yet in a
    checkpoint: a resume sends them again.
    """

    step_id: str
    service: str
    holder: str | None = None
    waiting: bool = False
    released: bool = False
    prompt: dict[str, Any] | None = None
    last_update: int = -1
    has_checkpoint: bool = False
    inputs: list[RunInput] = Field(default_factory=list)
    delivered: list[str] = Field(default_factory=list)


class TaskRecord(BaseModel):
    """Everything the control plane knows about one task."""

    task_id: str
    input: str
    status: TaskStatus = TaskStatus.PENDING
    #: The message type its final result is published as (None: none is; it is read here).
    result_key: str | None = HUMAN_MESSAGE_TYPE
    service: str | None = None
    session_id: str | None = None
    start_event: dict[str, Any] | None = None
    agent_id: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    undecided: list[str] = Field(default_factory=list)
    run: RunState | None = None
    result: TaskResult | None = None
    result_published: bool = False
    error: str | None = None
    #: The sequence of the `TaskFinished` event in its log, once appended.
    finished_event: int | None = None
    #: How many times a dead-letter replay reopened the task after it ended: each end logs
    #: its own `TaskFinished`, and each reopening a `TaskReopened` after the one it undoes.
    reopened: int = 0
    #: The task's W3C trace context (`traceparent`, `tracestate`) while tracing: its later
    #: steps, results and resumed runs join the trace its creation began.
    trace_context: dict[str, str] = Field(default_factory=dict)
    #: The control-plane replica that last changed the task (on a shared store): when it
    #: dies, another takes over what it left unfinished.
    handled_by: str | None = None
    #: The stored version this object was read at (the fence of its next save).
    _stored_version: int | None = PrivateAttr(default=None)

    @property
    def definition(self) -> TaskDefinition:
        """The task as orchestrators see it."""
        return TaskDefinition(
            input=self.input,
            task_id=self.task_id,
            agent_id=self.agent_id,
            start_event=self.start_event,
            service=self.service,
            session_id=self.session_id,
        )

    def step(self, step_id: str | None) -> StepRecord | None:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        return None

    def sent_step(self, sent_id: str | None) -> StepRecord | None:
        """The step a service's answer names, if it names the step's current attempt."""
        if sent_id is None:
            return None
        step_id, attempt = split_step_id(sent_id)
        step = self.step(step_id)
        return step if step is not None and step.attempt == attempt else None

    def open_steps(self) -> list[StepRecord]:
        return [s for s in self.steps if s.status is StepStatus.PENDING]

    def summary(self) -> TaskSummary:
        return TaskSummary(
            task_id=self.task_id,
            input=shorten(self.input),
            status=self.status,
            created_at=self.created_at,
            updated_at=self.updated_at,
            steps=len(self.steps),
            error=self.error,
            service=self.service,
            session_id=self.session_id,
            prompt=self.run.prompt if self.run is not None and self.run.waiting else None,
        )


class TaskSummary(BaseModel):
    """A task in a listing (its input shortened)."""

    task_id: str
    input: str
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    steps: int
    error: str | None = None
    service: str | None = None
    session_id: str | None = None
    #: The event that asked for input, while the task waits for it.
    prompt: dict[str, Any] | None = None


class TaskCreated(BaseModel):
    """`POST /tasks`: the new task's id."""

    task_id: str
    status: TaskStatus


class TaskNotFinished(BaseModel):
    """`GET /tasks/{id}/result` while the task is still running."""

    task_id: str
    status: TaskStatus
    finished: bool = False


class TaskEvent(BaseModel):
    """One entry of a task's event log.

    `sequence` numbers a task's events 1, 2, 3 ... with no gap; `type` is the event's class
    name and `types` its class hierarchy; `data` its fields as JSON. The last event of every
    task is a `TaskFinished` with the final status, result and error.
    """

    sequence: int
    type: str
    types: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    qualified_name: str | None = None
    step_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type == "TaskFinished"


class EventSent(BaseModel):
    """`POST /tasks/{id}/events`: the event was accepted and is on its way to the run."""

    task_id: str
    input_id: str
    status: Literal["sent", "queued"]


class SessionInfo(BaseModel):
    """A session: its tasks in order, the one running now, the ones waiting their turn."""

    session_id: str
    created_at: datetime
    updated_at: datetime
    tasks: list[str] = Field(default_factory=list)
    active: str | None = None
    queued: list[str] = Field(default_factory=list)


class ServiceInfo(ServiceDefinition):
    """A registered service, and whether anything consumes its queue right now.

    `consumers` is how many consumers the broker sees on the service's queue (None when the
    queue cannot say); `live` is True when there is at least one.
    """

    consumers: int | None = None
    live: bool | None = None


class ControlPlaneEvent(BaseModel):
    """One change: a task saved, a service registered or deregistered; or `resync`: some
    changes were dropped for this subscriber, reload what you show."""

    kind: Literal["task", "service", "resync"]
    action: Literal["updated", "registered", "deregistered", "dropped"]
    task: TaskSummary | None = None
    service: ServiceDefinition | None = None
    service_name: str | None = None
