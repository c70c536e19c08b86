"""`llama-agents tasks ...`: submit tasks to a running control plane and follow them.

A task's events and what is sent into its run (`events`, `respond`, `send-event`) live in
`task_events`; how `get` shows a record, in `task_views`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from llama_agents.console._common import (
    EXIT_NOT_FINISHED,
    client_options,
    connect,
    echo_json,
    echo_table,
    fail,
    json_object,
    json_option,
    when,
)
from llama_agents.console.task_events import echo_stream, events, respond, send_event
from llama_agents.console.task_views import echo_record
from llama_agents.errors import TaskTimeoutError
from llama_agents.messages.records import TaskStatus

if TYPE_CHECKING:
    from llama_agents.messages import TaskResult
    from llama_agents.sdk import LlamaAgentsClient


@click.group()
def tasks() -> None:
    """Create, inspect, follow, answer and cancel tasks on a running control plane."""


def _wait_options(command: click.decorators.FC) -> click.decorators.FC:
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=None,
        help="Seconds to wait at most (implies --wait); then exit with status 2.",
    )(command)
    return click.option("--wait", is_flag=True, help="Wait until the task finishes (no polling).")(
        command
    )


def _print_result(
    client: LlamaAgentsClient, task_id: str, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Prints a finished task's result; exit 1 if it failed, 2 if it has not finished."""
    result: TaskResult | None
    if wait or timeout is not None:
        try:
            result = client.wait_for_result(task_id, timeout=timeout)
        except TaskTimeoutError:
            result = None
    else:
        result = client.get_task_result(task_id)
    if result is None:
        if as_json:
            echo_json({"task_id": task_id, "finished": False})
        click.echo(f"Task {task_id} has not finished yet.", err=True)
        sys.exit(EXIT_NOT_FINISHED)
    if as_json:
        echo_json(result)
    elif result.error is None:
        click.echo(result.result)
    if result.error is not None:
        fail(f"task {task_id} did not complete: {result.error}")


@tasks.command("create")
@click.argument("input")
@_wait_options
@click.option("--task-id", default=None, help="The task's id (default: a new UUID).")
@click.option(
    "--result-key", default=None, help="Message type its final result goes to (default: human)."
)
@click.option("--service", default=None, help="Run it on this service (no orchestrator).")
@click.option(
    "--start-event",
    default=None,
    metavar="JSON",
    help="The workflow's start event fields, as a JSON object.",
)
@click.option("--session", "session_id", default=None, help="Continue this session.")
@click.option(
    "--no-result-message",
    "quiet",
    is_flag=True,
    help="Publish no result message (read the result here instead): nothing fills up unread.",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print its events as they happen, until it ends (created and streamed in one request).",
)
@json_option
@client_options
def create(
    input: str,
    wait: bool,
    timeout: float | None,
    task_id: str | None,
    result_key: str | None,
    service: str | None,
    start_event: str | None,
    session_id: str | None,
    quiet: bool,
    follow: bool,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Submit a task and print its id (with --wait, its result; with --follow, its events,
    the id on stderr)."""
    if follow and (wait or timeout is not None):
        raise click.UsageError("--follow prints the events to the end: not with --wait/--timeout")
    fields = None if start_event is None else json_object(start_event, "--start-event")
    with connect(control_plane_url, api_key) as client:
        if follow:
            stream = client.stream_task(
                input,
                task_id,
                result_key,
                service=service,
                start_event=fields,
                session_id=session_id,
                publish_result=not quiet,
            )
            click.echo(f"Task {stream.task_id}", err=True)
            echo_stream(stream, as_json)
            return
        created = client.create_task(
            input,
            task_id,
            result_key,
            service=service,
            start_event=fields,
            session_id=session_id,
            publish_result=not quiet,
        )
        if wait or timeout is not None:
            _print_result(client, created, True, timeout, as_json)
        elif as_json:
            echo_json({"task_id": created})
        else:
            click.echo(created)


@tasks.command("get")
@click.argument("task_id")
@click.option("--full", is_flag=True, help="Show long inputs and results whole.")
@json_option
@client_options
def get(
    task_id: str, full: bool, as_json: bool, control_plane_url: str, api_key: str | None
) -> None:
    """Show a task: its status, steps and result (long texts shortened, unless --full)."""
    with connect(control_plane_url, api_key) as client:
        record = client.get_task(task_id)
    if as_json:
        echo_json(record)
    else:
        echo_record(record, full=full)


@tasks.command("result")
@click.argument("task_id")
@_wait_options
@json_option
@client_options
def result(
    task_id: str,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Print a task's result (exit 2 while it has not finished).

    Exit status: 0 completed, 1 failed or cancelled (the error on stderr), 2 not finished.
    """
    with connect(control_plane_url, api_key) as client:
        _print_result(client, task_id, wait, timeout, as_json)


@tasks.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in TaskStatus]),
    help="Only tasks with this status (repeat for several).",
)
@click.option("--session", "session_id", default=None, help="Only this session's tasks.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many.",
)
@json_option
@client_options
def list_(
    statuses: tuple[str, ...],
    session_id: str | None,
    limit: int,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """List the control plane's tasks, newest first."""
    with connect(control_plane_url, api_key) as client:
        summaries = client.list_tasks(status=statuses or None, session_id=session_id, limit=limit)
    if as_json:
        echo_json(summaries)
        return
    rows = [(t.task_id, t.status.value, t.steps, when(t.updated_at), t.input) for t in summaries]
    echo_table(["TASK", "STATUS", "STEPS", "UPDATED", "INPUT"], rows, "No tasks.")


@tasks.command("cancel")
@click.argument("task_id")
@json_option
@client_options
def cancel(task_id: str, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """Cancel a task that has not finished yet."""
    with connect(control_plane_url, api_key) as client:
        summary = client.cancel_task(task_id)
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"Task {summary.task_id}: {summary.status.value}")


tasks.add_command(events)
tasks.add_command(respond)
tasks.add_command(send_event)
