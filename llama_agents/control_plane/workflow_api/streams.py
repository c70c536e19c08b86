"""`GET /events/{handler_id}`: a run's event log as the workflow server streams it.

Sequences on this API count from 0 (the server's), ours from 1: the wire sequence of our
event `n` is `n - 1`, so `after_sequence=-1` is the whole log and a client resumes with the
last `id:` it saw. The log's terminal `TaskFinished` is sent as the run's stop event (or the
server's `WorkflowFailedEvent` / `WorkflowCancelledEvent`), and the stream ends after it.
Driven by appends (the event log wakes it), never by polling; heartbeats while idle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.control_plane.streams import log_complete
from llama_agents.control_plane.workflow_api.envelopes import (
    WorkflowShape,
    event_envelope,
    is_terminal,
    terminal_envelope,
)
from llama_agents.messages.records import KEEPALIVE_SECONDS

#: Seconds between `: heartbeat` comments on an idle SSE stream (read at each request).
HEARTBEAT_SECONDS = KEEPALIVE_SECONDS


def to_wire(sequence: int) -> int:
    return sequence - 1


def from_wire(after_sequence: int) -> int:
    """Our `after` for the server's `after_sequence` (-1 or less: from the start)."""
    return max(after_sequence + 1, 0)


async def run_events(
    control_plane: ControlPlaneFace,
    task_id: str,
    after: int,
    shape: WorkflowShape | None,
    *,
    sse: bool,
    include_qualified_name: bool = True,
) -> AsyncIterator[str]:
    """The run's events after our sequence `after`, until its end (or the control plane's)."""

    async def finished() -> bool:
        return await log_complete(control_plane, task_id)

    async for row in control_plane.manager.log.follow(
        task_id,
        after,
        is_finished=finished,
        heartbeat=HEARTBEAT_SECONDS,
        stopping=control_plane.stopping,
    ):
        if row is None:
            if sse:
                yield ": heartbeat\n\n"
            continue
        if is_terminal(row.body):
            envelope = terminal_envelope(row.body, shape)
        else:
            envelope = event_envelope(row.body, shape)
        if not include_qualified_name:
            envelope.qualified_name = None
        payload = envelope.model_dump_json()
        yield f"id: {to_wire(row.sequence)}\ndata: {payload}\n\n" if sse else payload + "\n"
