"""Workflows the workflow-server API tests serve, on our mesh and on `llama-agents-server`.

`Greet` answers at once, `Tally` counts its runs in `ctx.store` (so a continued handler shows
the state it carried), `Boom` fails, and `Review` and `Slow` (tests.support.workflows) wait for a
person or for the test.
"""

from __future__ import annotations

from workflows import Context, Workflow, step
from workflows.events import StartEvent, StopEvent


class Greet(Workflow):
    @step
    async def greet(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=f"Hello, {ev.get('name', 'World')}!")


class Tally(Workflow):
    @step
    async def count(self, ctx: Context, ev: StartEvent) -> StopEvent:
        runs = int(await ctx.store.get("runs", default=0)) + 1
        await ctx.store.set("runs", runs)
        return StopEvent(result=runs)


class Boom(Workflow):
    @step
    async def explode(self, ev: StartEvent) -> StopEvent:
        raise ValueError("kaput")
