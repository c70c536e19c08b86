"""The payloads carried in `QueueMessage.data`, one model per kind of work."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from llama_agents.messages.chat import ChatMessage
from llama_agents.messages.envelope import RoutingKey
from llama_agents.messages.payload_base import Payload
from llama_agents.messages.runs import RunResume, StreamedEvent


def _new_id() -> str:
    return str(uuid.uuid4())


class TaskDefinition(Payload):
    """A task submitted to the system, or one step of it sent to a service.

    `step_id` is set on the steps the control plane sends out; the service copies it into
    its `TaskResult`, so the control plane records exactly one result per step.
    """

    input: str
    task_id: str = Field(
        default_factory=_new_id, min_length=1, max_length=200, pattern=r"^[^/\s]+$"
    )
    state: dict[str, Any] = Field(default_factory=dict)
    agent_id: str | None = None
    step_id: str | None = Field(default=None, max_length=200)
    #: The fields of a workflow's start event, instead of `input` as text.
    start_event: dict[str, Any] | None = None
    #: Run in this service directly, with no orchestrator.
    service: RoutingKey | None = None
    #: Continue this session: its context, one task at a time.
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    #: Set on steps that continue a checkpointed run or a session (control plane -> service).
    resume: RunResume | None = None


class TaskResult(Payload):
    """The outcome of a task (or one step of it), with the chat history that produced it.

    `history` takes llama-index `ChatMessage`s and holds them as our own `ChatMessage`
    (same JSON); `message.to_llama_index()` turns one back.

    `error` is set when the step (or the task) failed; `result` then holds what little
    output there was, often nothing.
    """

    task_id: str
    history: list[ChatMessage] = Field(default_factory=list)
    result: str
    data: dict[str, Any] = Field(default_factory=dict)
    step_id: str | None = Field(default=None, max_length=200)
    error: str | None = None
    #: A session's run sends the context it ended with here; the control plane keeps it
    #: for the session's next task and drops it from the result.
    context: dict[str, Any] | None = None
    #: A workflow run sends the events it streamed since its last update with its result
    #: (one message, not two); the control plane appends them to the task's event log,
    #: before its end, and drops them from the result.
    events: list[StreamedEvent] = Field(default_factory=list)
    #: How many updates the run reported before this result: a control plane applies those
    #: first (with several control planes, the messages of one run may be handled at once).
    run_updates: int | None = Field(default=None, ge=0)


class ToolCallBundle(Payload):
    """Which tool to call, and with what arguments."""

    tool_name: str
    tool_args: list[Any] = Field(default_factory=list)
    tool_kwargs: dict[str, Any] = Field(default_factory=dict)


class ToolCall(Payload):
    """A request to run a tool in another service; the answer goes to `source_id`."""

    id_: str = Field(default_factory=_new_id)
    tool_call_bundle: ToolCallBundle
    source_id: str


class ToolCallResult(Payload):
    """The answer to a `ToolCall`, matched to it by `id_`; `error` is set if the tool raised."""

    id_: str
    tool_message: ChatMessage
    result: str
    error: str | None = None


class ServiceDefinition(Payload):
    """What a service tells the control plane about itself when it registers."""

    service_name: RoutingKey
    description: str
    prompt: list[ChatMessage] = Field(default_factory=list)
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    kind: str | None = Field(default=None, description="agent, tool, human, component, ...")
    #: Seconds a step may go unanswered before its task fails (None: the control plane's
    #: default; 0 or less: no limit).
    step_timeout: float | None = None
    #: For workflow services: the JSON schemas of the start event, the result and the events
    #: a run accepts, so the control plane can check requests without the classes.
    workflow: dict[str, Any] | None = None


class HumanResponse(Payload):
    """What a person answered to a request for help."""

    result: str
