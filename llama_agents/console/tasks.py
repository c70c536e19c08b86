"""`llama-agents tasks ...`: submit tasks to a running control plane and follow them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from llama_agents.console._common import (
    EXIT_NOT_FINISHED,
    client_options,
    connect,
    echo_fields,
    echo_json,
    echo_table,
    fail,
    json_option,
    when,
)
from llama_agents.errors import TaskTimeoutError

if TYPE_CHECKING:
    from llama_agents.messages import TaskResult
    from llama_agents.sdk import LlamaAgentsClient


@click.group()
def tasks() -> None:
    """Create, inspect and cancel tasks on a running control plane."""


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
@json_option
@client_options
def create(
    input: str,
    wait: bool,
    timeout: float | None,
    task_id: str | None,
    result_key: str | None,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Submit a task and print its id (with --wait, its result)."""
    with connect(control_plane_url, api_key) as client:
        created = client.create_task(input, task_id=task_id, result_key=result_key)
        if wait or timeout is not None:
            _print_result(client, created, True, timeout, as_json)
        elif as_json:
            echo_json({"task_id": created})
        else:
            click.echo(created)


@tasks.command("get")
@click.argument("task_id")
@json_option
@client_options
def get(task_id: str, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """Show a task: its status, steps and result."""
    with connect(control_plane_url, api_key) as client:
        record = client.get_task(task_id)
    if as_json:
        echo_json(record)
        return
    echo_fields(
        [
            ("Task", record.task_id),
            ("Status", record.status.value),
            ("Input", record.input),
            ("Created", when(record.created_at)),
            ("Updated", when(record.updated_at)),
            ("Result", record.result.result if record.result else None),
            ("Error", record.error),
        ]
    )
    click.echo("Steps:")
    rows = [(s.service, s.status.value, when(s.completed_at), s.step_id) for s in record.steps]
    echo_table(["SERVICE", "STATUS", "COMPLETED", "STEP"], rows, "(none yet)", indent="  ")


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
@json_option
@client_options
def list_(as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """List the control plane's tasks, oldest first."""
    with connect(control_plane_url, api_key) as client:
        summaries = sorted(client.list_tasks(), key=lambda t: t.created_at)
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
