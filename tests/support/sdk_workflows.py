"""Small workflows the SDK and CLI tests serve besides `Review` (in `workflows`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from workflows import Context, Workflow, step
from workflows.events import StartEvent, StopEvent


class Remember(Workflow):
    """Answers with every input its session gave it so far (kept in `ctx.store`)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @step
    async def remember(self, ctx: Context, ev: StartEvent) -> StopEvent:
        said: list[Any] = await ctx.store.get("said", default=[])
        said = [*said, ev.get("input")]
        await ctx.store.set("said", said)
        return StopEvent(result=said)


class Topic(StartEvent):
    topic: str
    depth: int = 1


class Report(BaseModel):
    topic: str
    depth: int


class Research(Workflow):
    """Starts from a typed start event (`Topic`); answers with a pydantic model."""

    @step
    async def research(self, ev: Topic) -> StopEvent:
        return StopEvent(result=Report(topic=ev.topic, depth=ev.depth))
