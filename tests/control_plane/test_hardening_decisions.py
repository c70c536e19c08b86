"""Orchestrator decisions (an LLM call each) run off the path that records results (issue 9,
item 7): a decision that hangs does not stop other tasks' results from being processed,
`decision_timeout` fails its task with a clear reason, and `max_concurrent_decisions` bounds
how many run at once. The orchestrators here wait on events the tests control. Both queues.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llama_index.core.tools import BaseTool

from llama_agents import QueueMessage, TaskDefinition, TaskStatus
from tests.conftest import QueueFactory
from tests.support.hardening import ReadmeService, RouteByInput, served
from tests.support.helpers import DEADLINE


class Decisions(RouteByInput):
    """`RouteByInput`, counting the decisions running at once; a decision waits for `gate`
    when `held(input, state)` says so."""

    def __init__(self, held: Any) -> None:
        self.held = held
        self.gate = asyncio.Event()
        self.running = 0
        self.holding = 0
        self.peak = 0
        self.cancelled = 0
        self.changed = asyncio.Condition()

    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        async with self.changed:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.changed.notify_all()
        try:
            if self.held(task_def.input, state):
                async with self.changed:
                    self.holding += 1
                    self.changed.notify_all()
                await self.gate.wait()
            return await super().get_next_messages(task_def, tools, state)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            async with self.changed:
                self.running -= 1
                self.changed.notify_all()

    async def until_holding(self, count: int) -> None:
        """Until `count` decisions have waited at the gate."""
        async with asyncio.timeout(DEADLINE), self.changed:
            await self.changed.wait_for(lambda: self.holding >= count)


async def test_a_hanging_decision_does_not_hold_up_other_tasks_results(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    # The decision after the slow task's result hangs; prefetch=1: the control plane has a
    # single slot for results, so a result handler waiting on it would stop everything.
    orchestrator = Decisions(held=lambda text, state: text.startswith("upper: slow") and state)
    async with served(queue, tmp_path / "cp.sqlite3", orchestrator, prefetch=1) as system:
        await system.add(ReadmeService(queue, "upper"))
        slow = await system.create("upper: slow one")
        await orchestrator.until_holding(1)  # deciding on the slow task's result, hanging

        fast = [await system.create(f"upper: fast {n}") for n in range(5)]
        for n, task_id in enumerate(fast):
            record = await system.finished(task_id)
            assert record.status is TaskStatus.COMPLETED, record.error
            assert record.result is not None and record.result.result == f"FAST {n}"
        held = await system.control_plane.get_task(slow)
        assert held.status is TaskStatus.RUNNING and held.steps[0].result is not None

        orchestrator.gate.set()
        record = await system.finished(slow)
        assert record.result is not None and record.result.result == "SLOW ONE"


async def test_a_decision_past_decision_timeout_fails_its_task_with_the_reason(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    orchestrator = Decisions(held=lambda text, state: True)  # never decides
    async with served(queue, tmp_path / "cp.sqlite3", orchestrator, decision_timeout=0.3) as system:
        task_id = await system.create("upper: think forever")
        record = await system.finished(task_id)
        assert record.status is TaskStatus.FAILED
        assert record.error == "the orchestrator did not decide within 0.3s"
        assert orchestrator.cancelled == 1, "the hanging call was cancelled, not left running"


async def test_max_concurrent_decisions_bounds_the_decisions_running_at_once(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    orchestrator = Decisions(held=lambda text, state: not state)  # every first decision
    async with served(
        queue, tmp_path / "cp.sqlite3", orchestrator, max_concurrent_decisions=3
    ) as system:
        await system.add(ReadmeService(queue, "upper"))
        task_ids = [await system.create(f"upper: task {n}") for n in range(10)]
        await orchestrator.until_holding(3)
        # A task that names its service skips the orchestrator: once it has finished, every
        # task created before it has long been started and has asked for its decision.
        created = await system.http.post("/tasks", json={"input": "sentinel", "service": "upper"})
        sentinel = await system.finished(created.json()["task_id"])
        assert sentinel.status is TaskStatus.COMPLETED, sentinel.error
        status = (await system.http.get("/")).json()["decisions"]
        assert status == {"in_flight": 10, "waiting": 7, "limit": 3}, status
        assert (orchestrator.running, orchestrator.peak) == (3, 3)

        orchestrator.gate.set()
        for task_id in task_ids:
            record = await system.finished(task_id)
            assert record.status is TaskStatus.COMPLETED, record.error
        assert orchestrator.peak == 3
