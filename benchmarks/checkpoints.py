"""Benchmark a workflow run's checkpoints: `Context.to_dict()` against `ContextSnapshots`.

A `WorkflowService` checkpoints a run's context after each step it finishes. The workflows
library's `Context.to_dict()` folds the run's whole tick log every time it is called, so a
run of n steps checkpointed after each folds O(n²) ticks; `ContextSnapshots` (what the
service uses) folds each tick once. The script runs a workflow of ``--steps`` steps in a
row (each keeps a count in the run's state), ``--runs`` runs of it with ``--in-flight`` at
once, in one process with no broker, three ways: with no checkpoint (``none``), with a
checkpoint after each step by ``to_dict``, and by ``ContextSnapshots`` (``incremental``).

It prints one JSON line per step count and way: CPU ms per run, and the checkpoints' share
of it (``checkpoint_ms_per_run``: CPU per run minus that of ``none``) per run and per
step. Each way runs ``--rounds`` times, alternating; the figures are medians.

    .venv/bin/python benchmarks/checkpoints.py
    .venv/bin/python benchmarks/checkpoints.py --steps 2,8,32 --runs 400 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

from _common import (
    Output,
    add_rounds_options,
    alternating_rounds,
    cpu_record,
    description,
)
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StepState, StepStateChanged, StopEvent

from llama_agents._runtime import run
from llama_agents.services.workflow_codec import WorkflowCodec
from llama_agents.services.workflow_snapshots import ContextSnapshots

WAYS = ("none", "to_dict", "incremental")


class Counted(Event):
    n: int


class Steps(Workflow):
    """`steps` steps in a row (the first, then `steps - 1` counting ones)."""

    def __init__(self, steps: int) -> None:
        super().__init__(timeout=None)
        self.steps = steps

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Counted:
        await ctx.store.set("count", 0)
        return Counted(n=1)

    @step
    async def count(self, ctx: Context, ev: Counted) -> Counted | StopEvent:
        await ctx.store.set("count", ev.n)
        if ev.n >= self.steps - 1:
            return StopEvent(result=ev.n)
        return Counted(n=ev.n + 1)


async def one_run(workflow: Steps, codec: WorkflowCodec, way: str) -> None:
    handler = workflow.run(ctx=Context(workflow, serializer=codec.serializer))
    snapshots = ContextSnapshots(codec)
    async for event in handler.stream_events(expose_internal=True):
        finished = isinstance(event, StepStateChanged) and event.step_state is StepState.NOT_RUNNING
        if not finished or way == "none" or handler.ctx is None:
            continue
        if way == "to_dict":
            handler.ctx.to_dict(serializer=codec.serializer)
        else:
            await snapshots.take(handler.ctx)
    await handler


async def cpu_per_run(workflow: Steps, way: str, runs: int, in_flight: int) -> float:
    """CPU ms per run of `runs` runs, `in_flight` at once."""
    codec = WorkflowCodec(workflow)
    semaphore = asyncio.Semaphore(in_flight)

    async def bounded() -> None:
        async with semaphore:
            await one_run(workflow, codec, way)

    gc.collect()
    started = time.process_time()
    await asyncio.gather(*(bounded() for _ in range(runs)))
    return (time.process_time() - started) * 1000.0 / runs


async def measure(steps: int, args: argparse.Namespace, out: Output) -> None:
    workflow = Steps(steps)
    await cpu_per_run(workflow, "incremental", max(10, args.runs // 10), args.in_flight)  # warm

    async def one_round(way: str) -> float:
        return await cpu_per_run(workflow, way, args.runs, args.in_flight)

    figures = await alternating_rounds(WAYS, args.rounds, one_round)
    medians = {way: statistics.median(values) for way, values in figures.items()}
    for way in WAYS:
        record = cpu_record(args, way, figures, bench="checkpoints", steps=steps)
        if way != "none":
            extra = medians[way] - medians["none"]
            record["checkpoint_ms_per_run"] = round(extra, 3)
            record["checkpoint_ms_per_step"] = round(extra / steps, 3)
        out.emit(record)
    out.log(
        f"{steps} steps: to_dict {medians['to_dict'] - medians['none']:.3f} ms/run, "
        f"incremental {medians['incremental'] - medians['none']:.3f} ms/run of checkpoints"
    )


def step_counts(text: str) -> list[int]:
    """An argparse type: `8` or `2,8,32` (each at least 2)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers like 2,8,32: {exc}") from None
    if not counts or min(counts) < 2:
        raise argparse.ArgumentTypeError("give step counts of at least 2")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--steps", type=step_counts, default=[2, 8, 32], help="steps per run")
    add_rounds_options(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Output("checkpoints")

    async def all_counts() -> None:
        for steps in args.steps:
            await measure(steps, args, out)

    run(all_counts())


if __name__ == "__main__":
    main()
