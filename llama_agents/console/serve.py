"""`llama-agents serve ...`: one part of a system as a long-running process (a container)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click

from llama_agents._runtime import run
from llama_agents.logs import configure_logging, is_configured


@click.group()
def serve() -> None:
    """Serve one part of a system until SIGTERM (settings from LLAMA_AGENTS_* variables)."""
    # A server says what it does: startup, readiness, shutdown (at INFO).
    for name in ("llama_agents", "llama_agents.process"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not is_configured():
        configure_logging()


@serve.command("control-plane")
@click.option(
    "--orchestrator",
    "orchestrator_target",
    envvar="LLAMA_AGENTS_ORCHESTRATOR",
    help="module:attr or file.py:attr of an orchestrator (or a function making one). "
    "Default: an AgentOrchestrator on the LLM the environment selects.",
)
@click.option("--host", envvar="LLAMA_AGENTS_CONTROL_PLANE_HOST", help="Address to bind.")
@click.option("--port", envvar="LLAMA_AGENTS_CONTROL_PLANE_PORT", type=int, help="Port to bind.")
def control_plane(orchestrator_target: str | None, host: str | None, port: int | None) -> None:
    """Serve the control plane: its HTTP API, its queue, its state on disk."""
    from llama_agents.launchers.loader import load_target, resolve
    from llama_agents.launchers.process import serve_control_plane
    from llama_agents.orchestrators import AgentOrchestrator, BaseOrchestrator

    def orchestrator() -> BaseOrchestrator:
        if orchestrator_target:
            made: BaseOrchestrator = resolve(load_target(orchestrator_target), BaseOrchestrator)
            return made
        from llama_agents.llms import default_llm

        return AgentOrchestrator(llm=default_llm())

    _run(lambda: serve_control_plane(orchestrator(), host=host, port=port))


@serve.command("service")
@click.argument("target")
@click.option("--host", envvar="LLAMA_AGENTS_SERVICE_HOST", help="Address to bind.")
@click.option("--port", envvar="LLAMA_AGENTS_SERVICE_PORT", type=int, help="Port to bind.")
@click.option(
    "--public-host",
    envvar="LLAMA_AGENTS_SERVICE_PUBLIC_HOST",
    help="Host others reach this service at (default: the bind address).",
)
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Register with the control plane at LLAMA_AGENTS_CONTROL_PLANE_URL.",
)
def service(
    target: str, host: str | None, port: int | None, public_host: str | None, register: bool
) -> None:
    """Serve TARGET (module:attr or file.py:attr): a service, or a bare message consumer."""
    from llama_agents.launchers.loader import load_target, resolve
    from llama_agents.launchers.process import serve_service
    from llama_agents.message_consumers.base import BaseMessageQueueConsumer
    from llama_agents.services.base import BaseService

    def build() -> BaseService | BaseMessageQueueConsumer:
        made: BaseService | BaseMessageQueueConsumer = resolve(
            load_target(target), BaseService, BaseMessageQueueConsumer
        )
        return made

    _run(
        lambda: serve_service(
            build(), host=host, port=port, public_host=public_host, register=register
        )
    )


def _run(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run until stopped; a failure is reported by the root group as one `Error:` line."""
    try:
        run(make())
    except KeyboardInterrupt:
        sys.exit(130)
