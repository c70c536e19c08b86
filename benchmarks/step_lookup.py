"""Benchmark a run's CPU with the workflows library's step lookup, and with a served
workflow's (`remember_steps`).

The workflows runtime rebuilds a workflow's step table (`inspect.getmembers` over the whole
instance) each time it looks a step up: several times per run. `WorkflowService` builds it
once per workflow (`llama_agents.services.workflow_steps`). The script runs, in one process
with no broker, ``--runs`` runs with ``--in-flight`` at once of two workflows, each two ways
(``library``: as the library does; ``remembered``: as a served workflow does):

* ``two_steps``: two steps in a row, no LLM;
* ``function_agent``: a `FunctionAgent` with one tool and the offline LLM (no network), each
  run a tool call and an answer.

It prints one JSON line per workflow and way: CPU ms per run (median of ``--rounds``
rounds, the ways alternating), and for ``remembered`` the saving against ``library``.

    .venv/bin/python benchmarks/step_lookup.py
    .venv/bin/python benchmarks/step_lookup.py --runs 400 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import (
    Output,
    add_rounds_options,
    alternating_rounds,
    cpu_record,
    description,
)
from llama_index.core.agent.workflow import FunctionAgent
from workflows import Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from llama_agents._runtime import run
from llama_agents.llms import OfflineLLM
from llama_agents.services.workflow_steps import remember_steps

WAYS = ("library", "remembered")


class Halfway(Event):
    text: str


class TwoSteps(Workflow):
    @step
    async def first(self, ev: StartEvent) -> Halfway:
        return Halfway(text=ev.input + " one")

    @step
    async def second(self, ev: Halfway) -> StopEvent:
        return StopEvent(result=ev.text + " two")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def two_steps() -> tuple[Workflow, Callable[[Workflow, int], Any]]:
    return TwoSteps(timeout=None), lambda w, n: w.run(input=f"run {n}")


def function_agent() -> tuple[Workflow, Callable[[Workflow, int], Any]]:
    agent = FunctionAgent(llm=OfflineLLM(), tools=[add])
    return agent, lambda w, n: w.run(user_msg=f"what is {n} plus 2")


WORKFLOWS = {"two_steps": two_steps, "function_agent": function_agent}


async def cpu_per_run(
    workflow: Workflow, start: Callable[[Workflow, int], Any], runs: int, in_flight: int
) -> float:
    """CPU ms per run of `runs` runs, `in_flight` at once."""
    semaphore = asyncio.Semaphore(in_flight)

    async def bounded(n: int) -> None:
        async with semaphore:
            await start(workflow, n)

    gc.collect()
    started = time.process_time()
    await asyncio.gather(*(bounded(n) for n in range(runs)))
    return (time.process_time() - started) * 1000.0 / runs


async def measure(name: str, args: argparse.Namespace, out: Output) -> None:
    made = {way: WORKFLOWS[name]() for way in WAYS}
    remember_steps(made["remembered"][0])
    for workflow, start in made.values():  # warm up
        await cpu_per_run(workflow, start, max(10, args.runs // 10), args.in_flight)

    async def one_round(way: str) -> float:
        workflow, start = made[way]
        return await cpu_per_run(workflow, start, args.runs, args.in_flight)

    figures = await alternating_rounds(WAYS, args.rounds, one_round)
    medians = {way: statistics.median(values) for way, values in figures.items()}
    for way in WAYS:
        record = cpu_record(args, way, figures, bench="step_lookup", workflow=name)
        if way == "remembered":
            saved = medians["library"] - medians["remembered"]
            record["saved_ms_per_run"] = round(saved, 3)
            record["saved_pct"] = round(100.0 * saved / medians["library"], 1)
        out.emit(record)
    out.log(
        f"{name}: library {medians['library']:.3f} ms/run, "
        f"remembered {medians['remembered']:.3f} ms/run"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_rounds_options(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Output("step_lookup")

    async def every_workflow() -> None:
        for name in WORKFLOWS:
            await measure(name, args, out)

    run(every_workflow())


if __name__ == "__main__":
    main()
