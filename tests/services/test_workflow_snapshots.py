"""A run's checkpoints fold each tick of its log once (`ContextSnapshots`), and each is what
`Context.to_dict()` gives at that moment; a run resumed from one finishes where it left."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StepState, StepStateChanged, StopEvent

from llama_agents.services import workflow_snapshots
from llama_agents.services.workflow_codec import WorkflowCodec
from llama_agents.services.workflow_snapshots import ContextSnapshots

STEPS = 8


class Counted(Event):
    n: int


class Counter(Workflow):
    """`STEPS` steps in a row, each keeping its count in the run's state."""

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Counted:
        await ctx.store.set("seen", [])
        return Counted(n=1)

    @step
    async def count(self, ctx: Context, ev: Counted) -> Counted | StopEvent:
        seen = await ctx.store.get("seen")
        await ctx.store.set("seen", [*seen, ev.n])
        if ev.n == STEPS:
            return StopEvent(result=await ctx.store.get("seen"))
        return Counted(n=ev.n + 1)


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


async def test_each_snapshot_is_to_dict_and_each_tick_is_folded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folded: list[int] = []
    real_fold = workflow_snapshots.rebuild_state_from_ticks

    def counting_fold(state: Any, ticks: Any, run_id: str | None = None) -> Any:
        folded.append(len(ticks))
        return real_fold(state, ticks, run_id=run_id)

    monkeypatch.setattr(workflow_snapshots, "rebuild_state_from_ticks", counting_fold)
    workflow = Counter(timeout=None)
    codec = WorkflowCodec(workflow)
    snapshots = ContextSnapshots(codec)
    handler = workflow.run(ctx=Context(workflow, serializer=codec.serializer))
    taken: list[dict[str, Any]] = []
    async for event in handler.stream_events(expose_internal=True):
        if isinstance(event, StepStateChanged) and event.step_state is StepState.NOT_RUNNING:
            ctx = handler.ctx
            assert ctx is not None
            snapshot = await snapshots.take(ctx)
            assert as_json(snapshot) == as_json(
                {"context": ctx.to_dict(serializer=codec.serializer)}
            )
            taken.append(snapshot)
    assert await handler == list(range(1, STEPS + 1))
    assert len(taken) == STEPS + 1
    ticks = handler.ctx._face._external_adapter.replay()  # type: ignore[union-attr]
    # Linear: each tick folded by one snapshot only (to_dict folds them all, every time).
    assert sum(folded) <= len(ticks) and len(folded) == len(taken)


async def test_a_run_resumed_from_a_middle_snapshot_finishes_where_it_left() -> None:
    workflow = Counter(timeout=None)
    codec = WorkflowCodec(workflow)
    snapshots = ContextSnapshots(codec)
    handler = workflow.run(ctx=Context(workflow, serializer=codec.serializer))
    middle: dict[str, Any] | None = None
    async for event in handler.stream_events(expose_internal=True):
        if isinstance(event, StepStateChanged) and event.step_state is StepState.NOT_RUNNING:
            assert handler.ctx is not None
            snapshot = await snapshots.take(handler.ctx)
            if middle is None and (await handler.ctx.store.get("seen")) == [1, 2, 3]:
                middle = snapshot
    await handler
    assert middle is not None
    restored = Context.from_dict(workflow, as_json(middle)["context"], serializer=codec.serializer)
    resumed = workflow.run(ctx=restored)
    assert await resumed == list(range(1, STEPS + 1))
