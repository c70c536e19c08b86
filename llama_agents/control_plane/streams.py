"""Streams the HTTP face serves: one task's event log, and every change (for monitors).

Both are driven by what happens (an append, a save), never by polling, send keep-alives
while idle, and end when the control plane stops. A task's stream also ends after its
terminal event, and resumes exactly after the last sequence a client saw.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.messages.records import KEEPALIVE_SECONDS, TaskEvent


def task_event(sequence: int, body: dict[str, object]) -> TaskEvent:
    return TaskEvent.model_validate({**body, "sequence": sequence})


async def task_events(
    control_plane: ControlPlaneFace,
    task_id: str,
    after: int,
    *,
    sse: bool,
    heartbeat: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The task's events after `after`, as server-sent events or JSON lines."""
    manager = control_plane.manager

    async def finished() -> bool:
        record = await manager.tasks.load(task_id)
        return record is None or record.status.finished

    if sse:
        yield ": connected\n\n"
    async for row in manager.log.follow(
        task_id,
        after,
        is_finished=finished,
        heartbeat=heartbeat,
        stopping=control_plane.stopping,
    ):
        if row is None:
            yield ": keep-alive\n\n" if sse else "\n"
            continue
        payload = task_event(row.sequence, row.body).model_dump_json()
        yield f"id: {row.sequence}\ndata: {payload}\n\n" if sse else payload + "\n"


async def change_events(control_plane: ControlPlaneFace) -> AsyncIterator[str]:
    """Every task and service change as server-sent events, until the control plane stops."""
    async with control_plane.manager.events.subscribe() as events:
        yield ": connected\n\n"
        while True:
            try:
                event = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return  # the control plane is stopping: end the stream so it can
            yield f"event: {event.kind}\ndata: {event.model_dump_json()}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """The sequence in a `Last-Event-ID` header (None when absent or not a number)."""
    if not value:
        return None
    try:
        sequence = int(json.loads(value)) if value.strip().startswith('"') else int(value)
    except (ValueError, TypeError):
        return None
    return sequence if sequence >= 0 else None
