"""The click application: one group, one subcommand per job.

Starting the CLI imports click and little else: each command's module is imported when that
command runs (see `_group.LazyGroup`), and heavy parts (the server, llama-index, textual) only
by the commands that use them. The table's one-line help is what `llama-agents --help` shows;
a test checks it matches each command's own.
"""

from __future__ import annotations

import logging

import click

from llama_agents import __version__
from llama_agents.console._group import LazyCommand, LazyGroup
from llama_agents.logs import configure_logging

COMMANDS = {
    "dead-letters": LazyCommand(
        "llama_agents.console.dead_letters:dead_letters",
        "List, show, replay and purge dead letters (messages taken off their queues for good).",
    ),
    "demo": LazyCommand(
        "llama_agents.console.demo:demo",
        "Run the Getting Started multi-agent system and ask it a question.",
    ),
    "monitor": LazyCommand(
        "llama_agents.console.monitor:monitor",
        "Watch services and tasks live; create, inspect and cancel tasks; answer human requests.",
    ),
    "serve": LazyCommand(
        "llama_agents.console.serve:serve",
        "Serve one part of a system until SIGTERM (settings from LLAMA_AGENTS_* variables).",
    ),
    "services": LazyCommand(
        "llama_agents.console.services:services",
        "List and inspect the services registered with a control plane.",
    ),
    "sessions": LazyCommand(
        "llama_agents.console.sessions:sessions",
        "Create, inspect and delete sessions (tasks that continue one another).",
    ),
    "tasks": LazyCommand(
        "llama_agents.console.tasks:tasks",
        "Create, inspect, follow, answer and cancel tasks on a running control plane.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="llama-agents")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log what the library does, and why a command failed."
)
def main(verbose: bool) -> None:
    """Run llama-index agents as services on a RabbitMQ mesh."""
    # Text, or JSON lines with LLAMA_AGENTS_LOG_FORMAT=json; secrets redacted either way.
    configure_logging(logging.INFO if verbose else logging.WARNING)
    if verbose:
        # A failed command logs its traceback here at DEBUG (see `_failures`).
        logging.getLogger("llama_agents.console").setLevel(logging.DEBUG)
    else:
        # aio-pika's transport logs each failed connection attempt; the CLI reports it once.
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
        logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
