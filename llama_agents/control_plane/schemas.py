"""Checking a start event or an event sent into a run against what the workflow declares.

The control plane has no workflow classes: a workflow service registers the JSON schemas of
its start event and of the events it accepts, and requests are checked against those, so a
caller gets a 400 or 422 at once instead of a run failing later. Nothing named in a request
is ever imported.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from llama_agents.errors import EventRejectedError, UnknownEventTypeError, WorkflowInputError
from llama_agents.messages import ServiceDefinition


def _errors(schema: dict[str, Any], data: dict[str, Any]) -> str | None:
    validator = jsonschema.Draft202012Validator(schema)
    first = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
    if first is None:
        return None
    where = ".".join(str(part) for part in first.path)
    return f"{where}: {first.message}" if where else first.message


def validate_start_event(
    definition: ServiceDefinition | None, start_event: dict[str, Any] | None
) -> None:
    """Raise `WorkflowInputError` unless `start_event` fits the service's start event."""
    if start_event is None:
        return
    if definition is None:
        raise WorkflowInputError("start_event needs a service: name the workflow to start")
    workflow = definition.workflow
    if workflow is None:
        raise WorkflowInputError(
            f"service {definition.service_name!r} is not a workflow: send input only"
        )
    start = workflow.get("start_event", {})
    problem = _errors(start.get("schema", {}), start_event)
    if problem is not None:
        raise WorkflowInputError(
            f"start_event does not fit {start.get('type', 'the start event')}: {problem}"
        )


def validate_event(
    definition: ServiceDefinition | None, type_name: str, data: dict[str, Any]
) -> None:
    """Raise `EventRejectedError` unless `type_name` is one of the workflow's events and
    `data` fits its schema."""
    if definition is None or definition.workflow is None:
        name = definition.service_name if definition is not None else "its service"
        raise EventRejectedError(f"{name} is not a workflow: it takes no events")
    events = {e["type"]: e for e in definition.workflow.get("events", [])}
    declared = events.get(type_name)
    if declared is None:
        raise UnknownEventTypeError(
            f"{type_name!r} is not an event of {definition.service_name!r}; it accepts "
            f"{', '.join(sorted(events)) or 'none'}"
        )
    problem = _errors(declared.get("schema", {}), data)
    if problem is not None:
        raise EventRejectedError(f"{type_name} fields are invalid: {problem}")
