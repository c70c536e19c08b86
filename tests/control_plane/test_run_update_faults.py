"""A run update whose checkpoint could not be stored is applied in full when it comes again:
the task's record changes only once the update's events and checkpoint are stored, all in one
transaction (before, the first attempt advanced the run's update number, and the redelivery
was taken for an old update: the run was never seen waiting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from llama_agents import ControlPlaneServer, SimpleMessageQueue, TaskStatus, WorkflowService
from llama_agents.control_plane import SqliteStateStore
from llama_agents.control_plane.state import EventRow, NewEvent, TaskRow
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.workflows import Review


class CheckpointsFailOnce(SqliteStateStore):
    """Refuses each checkpoint the first time it is asked to store it, as a disk that was
    full for a moment would; the update's redelivery then stores it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.refused: set[int] = set()

    async def save_task(
        self,
        row: TaskRow,
        *,
        events: Sequence[NewEvent] = (),
        checkpoint: dict[str, Any] | None = None,
    ) -> list[EventRow]:
        if checkpoint is not None and checkpoint["sequence"] not in self.refused:
            self.refused.add(checkpoint["sequence"])
            raise OSError("injected by the test: no space left on device")
        return await super().save_task(row, events=events, checkpoint=checkpoint)


async def test_an_update_whose_checkpoint_failed_is_applied_when_redelivered(
    tmp_path: Path,
) -> None:
    store = CheckpointsFailOnce(tmp_path / "cp.sqlite3")
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator([]), store, port=0)
    serving = await serve(control_plane)
    review = WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0)
    try:
        await review.launch_local()
        await control_plane.register_service(review.service_definition)
        async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
            created = await http.post("/tasks", json={"input": "notes", "service": "review"})
            task_id = created.json()["task_id"]
            record = await control_plane.manager.wait_until(
                task_id,
                lambda r: (
                    r.status is TaskStatus.WAITING_FOR_INPUT
                    and r.run is not None
                    and r.run.has_checkpoint
                ),
                DEADLINE,
            )
        assert store.refused, "the fault was injected"
        assert record.run is not None and record.run.has_checkpoint
        checkpoint = await store.load_checkpoint(task_id)
        assert checkpoint is not None, "the redelivered update stored its checkpoint"
        assert checkpoint["sequence"] == record.run.last_update
    finally:
        await review.deregister_from_message_queue()
        await stop(control_plane, serving)
