"""`llama-agents sessions ...`: sessions whose tasks continue one another's context."""

from __future__ import annotations

import click

from llama_agents.console._common import (
    client_options,
    connect,
    echo_fields,
    echo_json,
    json_option,
    when,
)


@click.group()
def sessions() -> None:
    """Create, inspect and delete sessions (tasks that continue one another)."""


@sessions.command("create")
@click.option("--id", "session_id", default=None, help="The session's id (default: a new UUID).")
@json_option
@client_options
def create(
    session_id: str | None, as_json: bool, control_plane_url: str, api_key: str | None
) -> None:
    """Create a session and print its id (pass it to `tasks create --session`)."""
    with connect(control_plane_url, api_key) as client:
        session = client.create_session(session_id)
        info = client.get_session(session.session_id) if as_json else None
    if info is not None:
        echo_json(info)
    else:
        click.echo(session.session_id)


@sessions.command("get")
@click.argument("session_id")
@json_option
@client_options
def get(session_id: str, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """Show a session: its tasks in order, the active one, the queued ones."""
    with connect(control_plane_url, api_key) as client:
        info = client.get_session(session_id)
    if as_json:
        echo_json(info)
        return
    echo_fields(
        [
            ("Session", info.session_id),
            ("Created", when(info.created_at)),
            ("Updated", when(info.updated_at)),
            ("Active", info.active or "(none)"),
            ("Queued", ", ".join(info.queued)),
            ("Tasks", ", ".join(info.tasks) or "(none yet)"),
        ]
    )


@sessions.command("delete")
@click.argument("session_id")
@client_options
def delete(session_id: str, control_plane_url: str, api_key: str | None) -> None:
    """Delete a session and the context it kept (its tasks stay)."""
    with connect(control_plane_url, api_key) as client:
        client.delete_session(session_id)
    click.echo(f"Session {session_id} deleted.")
