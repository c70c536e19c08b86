"""`llama-agents dead-letters ...`: see, replay and purge what the system dead-lettered."""

from __future__ import annotations

import sys

import click

from llama_agents.console._common import (
    cell,
    client_options,
    connect,
    echo_fields,
    echo_json,
    echo_table,
    json_option,
    when,
)

#: How much of a reason or body one table row shows.
_SHORT = 60


@click.group("dead-letters")
def dead_letters() -> None:
    """List, show, replay and purge dead letters (messages taken off their queues for good)."""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


@dead_letters.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@client_options
def list_(limit: int, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """List the oldest dead letters (none is removed)."""
    with connect(control_plane_url, api_key) as client:
        page = client.list_dead_letters(limit)
    if as_json:
        echo_json(page)
        return
    rows = [
        (d.id, d.routing_key, d.attempts, when(d.dead_lettered_at), _short(d.reason))
        for d in page.dead_letters
    ]
    echo_table(["ID", "ROUTING KEY", "ATTEMPTS", "DEAD SINCE", "REASON"], rows, "No dead letters.")
    if page.count is not None and page.count > len(page.dead_letters):
        click.echo(f"({page.count} in all; --limit shows more)")


@dead_letters.command("show")
@click.argument("letter_id")
@json_option
@client_options
def show(letter_id: str, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """Show one dead letter (by its id or a unique prefix of it), body included."""
    with connect(control_plane_url, api_key) as client:
        letter = client.get_dead_letter(letter_id)
    if as_json:
        echo_json(letter)
        return
    echo_fields(
        [
            ("Id", letter.id),
            ("Routing key", letter.routing_key),
            ("Queue", letter.queue),
            ("Attempts", letter.attempts),
            ("Dead since", when(letter.dead_lettered_at)),
            ("Reason", letter.reason),
        ]
    )
    click.echo("Body:")
    click.echo(letter.body)


@dead_letters.command("replay")
@click.argument("letter_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option("--reason", default=None, help="Only those whose reason contains this text.")
@json_option
@client_options
def replay(
    letter_ids: tuple[str, ...],
    replay_all: bool,
    reason: str | None,
    as_json: bool,
    control_plane_url: str,
    api_key: str | None,
) -> None:
    """Put dead letters back on their routing keys with their attempts reset; the tasks
    they failed resume."""
    if bool(letter_ids) == replay_all:
        raise click.UsageError("name the dead letters to replay, or give --all")
    with connect(control_plane_url, api_key) as client:
        report = client.replay_dead_letters(
            list(letter_ids) if letter_ids else None, all=replay_all, reason=reason
        )
    if as_json:
        echo_json(report)
    else:
        for letter in report.replayed:
            click.echo(f"replayed {letter.id} to {letter.routing_key}")
        for task_id in report.reopened_tasks:
            click.echo(f"task {task_id} resumed")
        for failure in report.failed:
            click.echo(f"not replayed {failure.id} ({failure.routing_key}): {failure.error}")
        if not report.replayed and not report.failed:
            click.echo("No dead letters replayed.")
    if report.failed:
        sys.exit(1)  # some letters are still dead: a script must notice


@dead_letters.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@client_options
def purge(yes: bool, control_plane_url: str, api_key: str | None) -> None:
    """Delete every dead letter."""
    if not yes:
        click.confirm("Delete every dead letter for good?", abort=True)
    with connect(control_plane_url, api_key) as client:
        purged = client.purge_dead_letters()
    click.echo(f"purged {cell(purged)} dead letter(s)")
