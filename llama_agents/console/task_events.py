"""`llama-agents tasks events | respond | send-event`: a task's event log, and what is sent
into its run (a person's answer, any event its workflow declares)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from llama_agents.console._common import (
    client_options,
    connect,
    echo_json,
    fail,
    json_object,
    json_option,
)
from llama_agents.console.task_views import event_line

if TYPE_CHECKING:
    from collections.abc import Iterable

    from llama_agents.messages.records import EventSent, TaskEvent
    from llama_agents.sdk import TaskEventStream


def _echo_events(events: Iterable[TaskEvent], as_json: bool) -> None:
    """One line per event, printed (and flushed) as each arrives."""
    for event in events:
        click.echo(event.model_dump_json() if as_json else event_line(event))


def echo_stream(stream: TaskEventStream, as_json: bool) -> None:
    """Print a task's stream to its end; exit 1 when the task ended other than completed."""
    last: TaskEvent | None = None
    with stream:
        for last in stream:
            _echo_events((last,), as_json)
    if last is not None and last.is_terminal and last.data.get("status") != "completed":
        reason = last.data.get("error") or last.data.get("status")
        fail(f"task {stream.task_id} did not complete: {reason}")


def _echo_sent(sent: EventSent, as_json: bool) -> None:
    if as_json:
        echo_json(sent)
    else:
        click.echo(f"Sent to task {sent.task_id} ({sent.status}).")


@click.command("events")
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events until the task ends.")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only events after sequence N.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line on stdout.")
@client_options
def events(
    task_id: str,
    follow: bool,
    after: int | None,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Print a task's events: sequence, type and data (--follow: until the task ends)."""
    with connect(control_plane_url, api_key) as client:
        if follow:
            with client.stream_events(task_id, after=after) as stream:
                _echo_events(stream, as_json)
        else:
            _echo_events(client.get_events(task_id, after=after), as_json)


@click.command("respond")
@click.argument("task_id")
@click.argument("text")
@json_option
@client_options
def respond(
    task_id: str, text: str, as_json: bool, control_plane_url: str, api_key: str | None
) -> None:
    """Answer a task waiting for a person (a HumanResponseEvent)."""
    with connect(control_plane_url, api_key) as client:
        _echo_sent(client.respond(task_id, text), as_json)


@click.command("send-event")
@click.argument("task_id")
@click.argument("event_type", metavar="TYPE")
@click.option("--data", default=None, metavar="JSON", help="The event's fields, a JSON object.")
@click.option("--step", default=None, help="The step of the run to send it to.")
@json_option
@client_options
def send_event(
    task_id: str,
    event_type: str,
    data: str | None,
    step: str | None,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Send an event the task's workflow declares (by class name) into its run."""
    fields = None if data is None else json_object(data, "--data")
    with connect(control_plane_url, api_key) as client:
        _echo_sent(client.send_event(task_id, event_type, fields, step), as_json)
