"""A stream that opens while a task's end is being saved still ends with `TaskFinished`.

The task record (cached) says finished a moment before its terminal event is committed (with
the record, in one transaction); a reader that trusted the status alone ended the stream
without that event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from llama_agents import ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import SqliteStateStore
from llama_agents.control_plane.state import EventRow, NewEvent, TaskRow
from tests.support.control_plane import Worker, serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.streams import read_ndjson


class SlowEndStore(SqliteStateStore):
    """Holds the save that logs a `TaskFinished` event until the test opens the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.holding = asyncio.Event()
        self.gate = asyncio.Event()
        self.read_while_holding = asyncio.Event()

    async def save_task(
        self,
        row: TaskRow,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> list[EventRow]:
        if any(e.body.get("type") == "TaskFinished" for e in events):
            self.holding.set()
            await self.gate.wait()
        return await super().save_task(row, events=events, checkpoint=checkpoint)


async def test_a_stream_opened_while_the_end_is_saved_gets_the_terminal_event(
    tmp_path: Path,
) -> None:
    store = SlowEndStore(tmp_path / "cp.db")
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["worker"]), store, port=0)
    serving = await serve(control_plane)
    tasks = control_plane.manager.tasks
    stored = tasks.stored

    async def watched_stored(task_id: str) -> dict[str, Any] | None:
        body = await stored(task_id)
        if store.holding.is_set() and not store.gate.is_set():
            # The reader asked whether the task finished while its end was being saved:
            # the test wakes once it went on from here to its next wait (or end).
            store.read_while_holding.set()
        return body

    tasks.stored = watched_stored  # type: ignore[method-assign]
    try:
        worker = Worker(queue)
        await worker.start()
        async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
            created = await http.post("/tasks", json={"input": "x"})
            task_id = created.json()["task_id"]
            [step] = await worker.steps.wait_for(1)
            await worker.answer(step, "done")
            async with asyncio.timeout(DEADLINE):
                await store.holding.wait()  # finished in memory, its end not yet logged
            reading = asyncio.create_task(read_ndjson(http, task_id))
            async with asyncio.timeout(DEADLINE):
                await store.read_while_holding.wait()  # the reader found no end yet
            store.gate.set()
            events = await asyncio.wait_for(reading, DEADLINE)
        assert events[-1]["type"] == "TaskFinished", events
        assert events[-1]["data"]["status"] == "completed"
    finally:
        await stop(control_plane, serving)
