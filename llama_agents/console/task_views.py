"""How `llama-agents tasks ...` shows a task's record and its events to a person."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from llama_agents.console._common import echo_fields, echo_table, when
from llama_agents.console._failures import one_line
from llama_agents.messages.records import shorten

if TYPE_CHECKING:
    from llama_agents.messages.records import TaskEvent, TaskRecord

#: How much of an event's data one line of `tasks events` shows.
EVENT_DATA_CHARS = 120


def _text(value: str | None, full: bool) -> str | None:
    if value is None or full:
        return value
    return shorten(one_line(value))


def _compact(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def echo_record(record: TaskRecord, *, full: bool) -> None:
    """The record's fields (long texts shortened unless `full`), then its steps."""
    run = record.run
    prompt = run.prompt if run is not None and run.waiting else None
    asked = None
    if prompt is not None:
        asked = _text(_compact(prompt.get("data", prompt)), full)
    result = record.result.result if record.result else None
    echo_fields(
        [
            ("Task", record.task_id),
            ("Status", record.status.value),
            ("Service", record.service),
            ("Session", record.session_id),
            ("Input", _text(record.input, full)),
            ("Created", when(record.created_at)),
            ("Updated", when(record.updated_at)),
            ("Waiting for", asked),
            ("Result", _text(result, full)),
            ("Error", _text(record.error, full)),
        ]
    )
    click.echo("Steps:")
    rows = [(s.service, s.status.value, when(s.completed_at), s.step_id) for s in record.steps]
    echo_table(["SERVICE", "STATUS", "COMPLETED", "STEP"], rows, "(none yet)", indent="  ")


def event_line(event: TaskEvent) -> str:
    """`  3  InputRequiredEvent  {"prefix":"Approve?"}`: sequence, type, its data shortened."""
    data = shorten(_compact(event.data), EVENT_DATA_CHARS) if event.data else ""
    return f"{event.sequence:>4}  {event.type}  {data}".rstrip()
