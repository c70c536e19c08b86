"""`llama-agents monitor`: the terminal app that watches and drives a running control plane."""

from __future__ import annotations

import asyncio

import click

from llama_agents.console._common import client_options


@click.command()
@client_options
def monitor(control_plane_url: str, api_key: str | None) -> None:
    """Watch services and tasks live; create, inspect and cancel tasks; answer human requests.

    The selected task's events stream into the events panel; tasks waiting for input are
    marked and show what they ask; LIVE says whether anything consumes a service's queue.

    Keys: q quit, c cancel the selected task, r reload, n new task, a answer the selected
    task waiting for input (Enter on it too) or a request waiting at a human service, esc
    back, tab next pane, arrows move. Type a task's input (or, while answering, the answer)
    in the box at the bottom and press Enter to send it.
    """
    # Imported here so that the other commands start without loading textual.
    from llama_agents.console.monitor_app import MonitorApp
    from llama_agents.sdk import AsyncLlamaAgentsClient

    # Built before the app starts, so a malformed URL is an `Error:` line, not a screen.
    client = AsyncLlamaAgentsClient(control_plane_url, api_key=api_key or None)

    async def run() -> None:
        async with client:
            await MonitorApp(client).run_async()

    asyncio.run(run())
