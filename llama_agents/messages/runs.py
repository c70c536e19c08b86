"""Payloads of workflow runs on the mesh: what a run reports, and what is sent into it.

A run is one step of a task handed to a `WorkflowService`. While it runs, its replica reports
`RunUpdate`s to the control plane (the events it streamed, its checkpoint, whether it waits for
input or was released); the control plane sends `RunInput` (an event for the run) and
`RunCancel` to the replica holding it, at that replica's own address; a replica that cannot
take a step (a redelivery, a step that waited in the queue from before it started, an input
for a run it no longer holds) hands it back with `RunBounce`, and the control plane decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from llama_agents.messages.envelope import utc_now
from llama_agents.messages.payload_base import Payload


class StreamedEvent(Payload):
    """One event a run wrote to its stream, as JSON.

    `type` is the event's class name and `types` its class hierarchy (most specific first),
    so clients can match `InputRequiredEvent` subclasses without knowing them. `key` makes
    the control plane's append idempotent when the message carrying it is redelivered.
    """

    key: str = Field(min_length=1, max_length=300)
    type: str = Field(min_length=1, max_length=200)
    types: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    qualified_name: str | None = None
    emitted_at: datetime = Field(default_factory=utc_now)


class RunUpdate(Payload):
    """What a run reports: events, and at step boundaries a checkpoint of its context.

    `sequence` counts this step's updates, so a late or repeated update cannot overwrite a
    newer checkpoint. `holder` is the replica address that takes `RunInput` and `RunCancel`
    for this run (None once `released`). `applied_inputs` are the ids of the inputs whose
    effect the checkpoint includes: until a checkpoint names an input, the control plane keeps
    it and sends it again on a resume.
    """

    task_id: str
    step_id: str
    sequence: int = Field(ge=0)
    holder: str | None = None
    events: list[StreamedEvent] = Field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    waiting: bool = False
    released: bool = False
    prompt: StreamedEvent | None = None
    applied_inputs: list[str] = Field(default_factory=list)


class RunInput(Payload):
    """An event sent into a run (a person's answer, say): its type among the workflow's
    events and its fields; `step` optionally names the step that should receive it."""

    input_id: str = Field(min_length=1, max_length=200)
    task_id: str
    type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    step: str | None = None
    #: The task step (the run) it was sent to, so a replica that does not hold the run can
    #: hand it back naming it.
    for_step_id: str | None = None


class RunCancel(Payload):
    """Stop the task's run where it runs."""

    task_id: str
    reason: str = "cancelled"


class RunResume(Payload):
    """What a step needs to continue a run (or a session) instead of starting afresh:
    the checkpoint to restore, and inputs that the checkpoint does not include yet."""

    checkpoint: dict[str, Any] | None = None
    inputs: list[RunInput] = Field(default_factory=list)
    #: The event the run last asked for input with, if it waited: a run restored where it
    #: waited asks again with it.
    prompt: StreamedEvent | None = None


class RunBounce(Payload):
    """A replica hands a step back to the control plane without running it."""

    task_id: str
    step_id: str | None = None
    reason: Literal["redelivered", "stale", "not_held"]
    input_id: str | None = None
