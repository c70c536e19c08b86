"""A run's context as JSON, checkpoint after checkpoint, at the cost of what changed.

`Context.to_dict()` rebuilds a run's state by folding its whole tick log from the start,
every time: a run checkpointed after each of its n steps folded O(n²) ticks, and for a
two-step run the fold was most of a checkpoint's cost. The log only grows, and the reducer
folds a suffix onto an earlier state as it folds the whole log (`rebuild_state_from_ticks`
never rewinds on its own), so `ContextSnapshots` keeps the state folded so far and folds
only the ticks since the last snapshot onto it.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.memory import BaseMemory
from workflows import Context
from workflows.context.external_context import ExternalContext
from workflows.context.serializers import BaseSerializer
from workflows.runtime.control_loop import rebuild_state_from_ticks
from workflows.runtime.types.internal_state import BrokerState
from workflows.runtime.types.plugin import as_snapshottable_adapter

from llama_agents.services.workflow_codec import WorkflowCodec


class ContextSnapshots:
    """Snapshots of one run's context (one `Context`, one tick log), each as
    `{"context": ctx.to_dict()}` with the run's chat memory included."""

    def __init__(self, codec: WorkflowCodec) -> None:
        self.codec = codec
        self._state: BrokerState | None = None
        self._folded = 0  # ticks of the log folded into `_state`

    async def take(self, ctx: Context) -> dict[str, Any]:
        serializer = self.codec.serializer
        memory = await _memory(ctx)
        if memory is not None:
            # The workflows serializer skips chat memory; the codec's keeps its messages.
            serializer.remember(memory, list(await memory.aget_all()))
        try:
            return {"context": self._context(ctx, serializer)}
        finally:
            serializer.forget()

    def _context(self, ctx: Context, serializer: BaseSerializer) -> dict[str, Any]:
        face = ctx._face
        adapter = face._external_adapter if isinstance(face, ExternalContext) else None
        snapshottable = as_snapshottable_adapter(adapter) if adapter is not None else None
        if adapter is None or snapshottable is None:
            return ctx.to_dict(serializer=serializer)  # not running, or no tick log to fold
        ticks = snapshottable.replay()
        if self._state is None or len(ticks) < self._folded:
            self._state, self._folded = snapshottable.init_state, 0
        self._state = rebuild_state_from_ticks(
            self._state, ticks[self._folded :], run_id=adapter.run_id
        )
        self._folded = len(ticks)
        context = self._state.to_serialized(serializer)
        store = adapter.get_state_store(())
        context.state = store.to_dict(serializer) if store is not None else {}
        return context.model_dump(mode="python")


async def _memory(ctx: Context) -> BaseMemory | None:
    try:
        memory = await ctx.store.get("memory", default=None)
    except Exception:
        return None
    return memory if isinstance(memory, BaseMemory) else None
