"""What the control plane keeps about tasks: records stored as JSON, and its API's bodies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from llama_agents.message_queues.base import HUMAN_MESSAGE_TYPE
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.messages.envelope import RoutingKey, utc_now


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class StepStatus(StrEnum):
    """Where one step (one service's piece of a task) is."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class StepRecord(BaseModel):
    """One step sent to a service.

    `message` is the exact message sent, so a step saved but never confirmed by the broker
    can be sent again after a crash; `published` says whether the broker confirmed it.
    """

    step_id: str
    service: str
    input: str
    message: dict[str, Any]
    published: bool = False
    status: StepStatus = StepStatus.PENDING
    result: TaskResult | None = None
    created_at: datetime = Field(default_factory=utc_now)
    completed_at: datetime | None = None


class TaskRecord(BaseModel):
    """Everything the control plane knows about one task."""

    task_id: str
    input: str
    definition: TaskDefinition
    status: TaskStatus = TaskStatus.PENDING
    result_key: str = HUMAN_MESSAGE_TYPE
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    steps: list[StepRecord] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    result: TaskResult | None = None
    result_published: bool = False
    error: str | None = None

    def step(self, step_id: str | None) -> StepRecord | None:
        for step in self.steps:
            if step.step_id == step_id:
                return step
        return None

    def summary(self) -> TaskSummary:
        return TaskSummary(
            task_id=self.task_id,
            input=self.input,
            status=self.status,
            created_at=self.created_at,
            updated_at=self.updated_at,
            steps=len(self.steps),
            error=self.error,
        )


class TaskSummary(BaseModel):
    """A task in a listing."""

    task_id: str
    input: str
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    steps: int
    error: str | None = None


class NewTask(TaskDefinition):
    """`POST /tasks`: a `TaskDefinition` (only `input` is required), and where its result goes."""

    input: str = Field(min_length=1)
    result_key: RoutingKey = HUMAN_MESSAGE_TYPE


class TaskCreated(BaseModel):
    task_id: str
    status: TaskStatus


class TaskNotFinished(BaseModel):
    """`GET /tasks/{id}/result` while the task is still running."""

    task_id: str
    status: TaskStatus
    finished: bool = False


class ServiceName(BaseModel):
    service_name: RoutingKey
