"""Events between our JSON and the workflow server's envelopes, by the workflow's description.

The control plane has no workflow classes: what it knows of a workflow is the description its
service registered (`WorkflowCodec.describe()`: the start and stop events and the events a run
accepts, each with its class hierarchy and JSON schema). Events sent in are resolved by their
`type` among those; a `qualified_name` is only ever compared by its last segment, never
imported.

Our stored events keep an event's free-form fields beside its declared ones; the workflow
server writes them under `_data` (pydantic's dump of a workflows `Event`). For events the
description knows, fields its schema does not declare go back under `_data`; events it does
not know (ones a run only streams) are written as they were stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from llama_agents.control_plane.event_log import TASK_FINISHED
from llama_agents.control_plane.workflow_api.models import EventEnvelope
from llama_agents.errors import EventRejectedError, UnknownEventTypeError
from llama_agents.messages.records import TaskRecord, TaskStatus

#: Where a workflows `Event` keeps the fields its class does not declare.
FREE_FIELDS = "_data"
STOP_EVENT = "StopEvent"
STOP_EVENT_PATH = "workflows.events.StopEvent"
_FAILED = ("WorkflowFailedEvent", "workflows.events.WorkflowFailedEvent")
_CANCELLED = ("WorkflowCancelledEvent", "workflows.events.WorkflowCancelledEvent")
_ERROR_PREFIX = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$", re.S)


@dataclass(frozen=True)
class DeclaredEvent:
    """One event the description names: its class hierarchy (itself first) and schema."""

    type: str
    types: list[str]
    schema: dict[str, Any]

    @property
    def declared_fields(self) -> set[str]:
        return set(self.schema.get("properties", {}))


@dataclass(frozen=True)
class WorkflowShape:
    """What the control plane knows of one workflow, from its service's description."""

    name: str
    start: DeclaredEvent
    stop: DeclaredEvent
    events: dict[str, DeclaredEvent] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, description: dict[str, Any]) -> WorkflowShape:
        events = {
            str(e["type"]): DeclaredEvent(str(e["type"]), list(e.get("types") or []), e["schema"])
            for e in description.get("events", [])
            if isinstance(e, dict) and "type" in e
        }

        def declared(key: str, default: str) -> DeclaredEvent:
            about = description.get(key) or {}
            type_name = str(about.get("type", default))
            known = events.get(type_name)
            types = known.types if known else [type_name]
            return DeclaredEvent(type_name, types, about.get("schema") or {"type": "object"})

        return cls(
            name, declared("start_event", "StartEvent"), declared("stop_event", STOP_EVENT), events
        )

    def known(self, type_name: str) -> DeclaredEvent | None:
        if type_name == self.start.type:
            return self.start
        if type_name == self.stop.type:
            return self.stop
        return self.events.get(type_name)


# -- out: our events and results as envelopes ----------------------------------------


def _base_types(types: list[str]) -> list[str] | None:
    """The server's `types`: base classes only, None when there are none."""
    return list(types[1:]) or None


def _split(data: dict[str, Any], declared: DeclaredEvent | None) -> dict[str, Any]:
    """`data` with the fields `declared` does not name under `_data`, as the server dumps it."""
    if declared is None or FREE_FIELDS in data:
        return dict(data)
    names = declared.declared_fields
    value = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    if extra:
        value[FREE_FIELDS] = extra
    return value


def event_envelope(body: dict[str, Any], shape: WorkflowShape | None) -> EventEnvelope:
    """A stored event of a run (not the terminal one) as the server streams it."""
    type_name = str(body.get("type", "Event"))
    types = [str(t) for t in body.get("types") or [type_name]]
    data = body.get("data") or {}
    declared = shape.known(type_name) if shape is not None else None
    return EventEnvelope(
        value=_split(data if isinstance(data, dict) else {"value": data}, declared),
        qualified_name=body.get("qualified_name"),
        type=type_name,
        types=_base_types(types),
    )


def stop_envelope(value: Any, shape: WorkflowShape | None) -> EventEnvelope:
    """A completed run's result (our `TaskResult.data["result"]`) as its stop event."""
    stop = shape.stop if shape is not None else DeclaredEvent(STOP_EVENT, [STOP_EVENT], {})
    if stop.type == STOP_EVENT or not isinstance(value, dict):
        return EventEnvelope(
            value={"result": value}, qualified_name=STOP_EVENT_PATH, type=STOP_EVENT, types=None
        )
    return EventEnvelope(
        value=dict(value),
        qualified_name=None,  # a custom stop event's module is not in the description
        type=stop.type,
        types=_base_types(stop.types) or [STOP_EVENT],
    )


def result_envelope(record: TaskRecord, shape: WorkflowShape | None) -> EventEnvelope | None:
    """A completed run's result as the stop event the server keeps; None before or otherwise."""
    if record.status is not TaskStatus.COMPLETED or record.result is None:
        return None
    result = record.result
    return stop_envelope(result.data.get("result", result.result), shape)


def terminal_envelope(body: dict[str, Any], shape: WorkflowShape | None) -> EventEnvelope:
    """Our terminal `TaskFinished` event as the last event the server streams: the run's stop
    event, or its `WorkflowFailedEvent` / `WorkflowCancelledEvent` (our event carries only the
    error text, so the failure's step, attempts and duration are not known: empty and zero)."""
    data = body.get("data") or {}
    status = data.get("status")
    if status == TaskStatus.COMPLETED.value:
        return stop_envelope(data.get("result"), shape)
    if status == TaskStatus.CANCELLED.value:
        name, path = _CANCELLED
        return EventEnvelope(value={}, qualified_name=path, type=name, types=[STOP_EVENT])
    error = str(data.get("error") or "the run failed")
    matched = _ERROR_PREFIX.match(error)
    kind, message = (matched.group(1), matched.group(2)) if matched else ("Exception", error)
    name, path = _FAILED
    value = {
        "step_name": "",
        "exception": {"exception_type": kind, "exception_message": message},
        "attempts": 1,
        "elapsed_seconds": 0.0,
    }
    return EventEnvelope(value=value, qualified_name=path, type=name, types=[STOP_EVENT])


def is_terminal(body: dict[str, Any]) -> bool:
    return body.get("type") == TASK_FINISHED


# -- in: start events and events sent into a run --------------------------------------


def _flatten(value: Any) -> dict[str, Any]:
    """An event's fields as one dict: `_data` (free-form fields) merged in."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventRejectedError("an event's value must be a JSON object")
    fields = {k: v for k, v in value.items() if k != FREE_FIELDS}
    extra = value.get(FREE_FIELDS)
    if extra is not None:
        if not isinstance(extra, dict):
            raise EventRejectedError(f"{FREE_FIELDS} must be a JSON object")
        fields.update(extra)
    return fields


def _loads(data: Any) -> Any:
    if isinstance(data, str):
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            raise EventRejectedError("the event is not a JSON object") from None
    return data


def _type_of(envelope: dict[str, Any], shape: WorkflowShape) -> str:
    """The event type an envelope names: `type`, else the last segment of `qualified_name`
    (matched by name among the workflow's events, never imported)."""
    type_name = envelope.get("type")
    if not type_name:
        qualified = envelope.get("qualified_name")
        if not isinstance(qualified, str) or not qualified:
            raise EventRejectedError("the event has neither a type nor a qualified_name")
        type_name = qualified.rsplit(".", 1)[-1]
        if shape.known(type_name) is None:
            raise UnknownEventTypeError(
                f"Event type {qualified} is not declared by workflow {shape.name!r}"
            )
    if not isinstance(type_name, str):
        raise EventRejectedError("an event's type must be a string")
    return type_name


def parse_sent_event(data: Any, shape: WorkflowShape) -> tuple[str, dict[str, Any]]:
    """A posted event (an envelope, or its JSON text) as (type, fields); `UnknownEventTypeError`
    unless the workflow declares that type."""
    envelope = _loads(data)
    if not isinstance(envelope, dict):
        raise EventRejectedError("the event must be a JSON object, or its JSON text")
    if "value" not in envelope and "data" in envelope:
        envelope = {**envelope, "value": envelope["data"]}  # the server's legacy form
    type_name = _type_of(envelope, shape)
    if type_name not in shape.events:
        accepted = ", ".join(sorted(shape.events)) or "none"
        raise UnknownEventTypeError(f"Invalid event type: {type_name}. Expected one of {accepted}")
    return type_name, _flatten(envelope.get("value"))


def parse_start_event(data: Any, shape: WorkflowShape) -> dict[str, Any]:
    """A run's start event fields, from a bare dict of them or an envelope of the workflow's
    start event (as the server reads `start_event`)."""
    given = _loads(data)
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise EventRejectedError("start_event must be a JSON object")
    is_envelope = "value" in given and ("type" in given or "qualified_name" in given)
    if not is_envelope:
        return _flatten(given)
    type_name = _type_of(given, shape)
    if type_name != shape.start.type:
        raise UnknownEventTypeError(f"Start event must be a {shape.start.type}, got {type_name}")
    return _flatten(given.get("value"))
