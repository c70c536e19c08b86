"""`llama-agents demo`: the README's Getting Started system, asked one question."""

from __future__ import annotations

import asyncio
import logging

import click


@click.command()
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
@click.pass_context
def demo(
    ctx: click.Context, broker: str, amqp_url: str | None, question: str, timeout: float
) -> None:
    """Run the Getting Started multi-agent system and ask it a question."""
    verbose = bool(ctx.find_root().params.get("verbose"))
    if not verbose:
        # The demo prints its outcome (the answer, or one `Error:` line); what the library
        # and the LLM client log on the way (retries, a failed step's traceback) is for -v.
        logging.getLogger().setLevel(logging.CRITICAL)

    # Imported here: the demo needs the whole system, the other commands do not.
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

    asyncio.run(run())
