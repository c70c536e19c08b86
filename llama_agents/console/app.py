"""The click application: one group, one subcommand per job."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from llama_agents import __version__
from llama_agents.errors import LlamaAgentsError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llama-agents")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does.")
def main(verbose: bool) -> None:
    """Run llama-index agents as services on a RabbitMQ mesh."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # aio-pika's transport logs each failed connection attempt; the CLI reports it once.
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
        logging.getLogger("aio_pika").setLevel(logging.CRITICAL)


@main.command()
@click.option(
    "--broker",
    type=click.Choice(["auto", "rabbitmq", "embedded"]),
    default="auto",
    show_default=True,
    help="auto: RabbitMQ when one answers, else the embedded queue.",
)
@click.option("--amqp-url", envvar="LLAMA_AGENTS_AMQP_URL", help="RabbitMQ URL.")
@click.option("--question", default="What is the secret fact?", show_default=True)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
def demo(broker: str, amqp_url: str | None, question: str, timeout: float) -> None:
    """Run the Getting Started multi-agent system and ask it a question."""
    from llama_agents.demo import pick_broker, run_demo
    from llama_agents.llms import default_llm, describe_llm

    llm = default_llm()
    if getattr(llm, "is_offline", False):
        # The demo says so itself, on stdout; no need for the library's warning too.
        logging.getLogger("llama_agents.llms").setLevel(logging.ERROR)

    async def run() -> None:
        chosen = await pick_broker(amqp_url, prefer=broker)
        click.echo(f"Broker: {chosen.description}")
        click.echo(f"LLM: {describe_llm(llm)}")
        click.echo(f"Question: {question}")
        answer = await run_demo(chosen, llm, question, timeout=timeout)
        click.echo(f"Result: {answer}")

    try:
        asyncio.run(run())
    except LlamaAgentsError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


from llama_agents.console.serve import serve  # noqa: E402

main.add_command(serve)

from llama_agents.console.services import services  # noqa: E402
from llama_agents.console.tasks import tasks  # noqa: E402

main.add_command(tasks)
main.add_command(services)

from llama_agents.console.monitor import monitor  # noqa: E402

main.add_command(monitor)
