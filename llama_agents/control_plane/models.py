"""What the control plane keeps about tasks (records stored as JSON) and its API's bodies.

The records and answers clients read live in `llama_agents.messages.records` (light, for the
SDK and the CLI) and are re-exported here; the request bodies only the server reads stay here.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from llama_agents.errors import ConfigurationError
from llama_agents.messages import TaskDefinition
from llama_agents.messages.envelope import HUMAN_MESSAGE_TYPE, RoutingKey
from llama_agents.messages.records import (
    StepRecord,
    StepStatus,
    TaskCreated,
    TaskNotFinished,
    TaskRecord,
    TaskStatus,
    TaskSummary,
)

__all__ = [
    "NewTask",
    "ServiceName",
    "StepRecord",
    "StepStatus",
    "TaskCreated",
    "TaskNotFinished",
    "TaskRecord",
    "TaskStatus",
    "TaskSummary",
]


class NewTask(TaskDefinition):
    """`POST /tasks`: a `TaskDefinition` (only `input` is required), and where its result goes.

    `service` runs it there directly (no orchestrator); `start_event` gives a workflow's start
    event fields; `session_id` continues a session. `result_key: null` publishes no result
    message (a client that reads results over HTTP needs none, and a queue nobody reads only
    grows). `step_id` and `resume` are the control plane's own and are refused here.
    """

    input: str = Field(min_length=1)
    result_key: RoutingKey | None = HUMAN_MESSAGE_TYPE

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ConfigurationError("input must not be blank")
        return value

    @model_validator(mode="after")
    def _no_internal_fields(self) -> NewTask:
        if self.step_id is not None or self.resume is not None:
            raise ConfigurationError(
                "step_id and resume are set by the control plane, not by clients"
            )
        return self


class ServiceName(BaseModel):
    """`POST /services/deregister`: which service; with `if_unconsumed`, only if nothing
    consumes its queue any more (a replica stopping leaves its siblings registered)."""

    service_name: RoutingKey
    if_unconsumed: bool = False
