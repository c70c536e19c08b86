"""A step's publish mark is written with its task's next save, not with a write of its own
(`control_plane/publish_marks.py`): a step answered soon costs one save fewer; a mark no save
takes is written alone after the delay, and when the control plane stops; a restarted control
plane does not send a step whose mark was held."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llama_agents import ControlPlaneServer, TaskStatus
from llama_agents.control_plane.publish_marks import DEFAULT_MARK_DELAY, PublishMarks
from llama_agents.control_plane.state import SqliteStateStore
from llama_agents.control_plane.state.base import TaskRow
from llama_agents.messages.records import TaskRecord
from tests.conftest import QueueFactory
from tests.support.control_plane import consuming
from tests.support.hardening import TEST_MARK_DELAY, ReadmeService, RouteByInput, served
from tests.support.helpers import DEADLINE

pytestmark = pytest.mark.rabbitmq


class CountingStore(SqliteStateStore):
    """The SQLite store, counting the saves of each task."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saves: Counter[str] = Counter()

    async def save_task(self, row: TaskRow, **kwargs: Any) -> Any:
        self.saves[row.task_id] += 1
        return await super().save_task(row, **kwargs)


def holds_of(marks: PublishMarks) -> dict[str, asyncio.Event]:
    """An event per task, set once its step's mark is held.

    The mark is held once the broker confirmed the step's publish, and the service can
    receive the step (and start) before the control plane hears that confirm: a loaded CI
    run once found the mark not held yet when the service had started.
    """
    held: dict[str, asyncio.Event] = {}
    hold = marks.hold

    def holding(record: TaskRecord) -> None:
        hold(record)
        if marks.held(record.task_id):
            held.setdefault(record.task_id, asyncio.Event()).set()

    marks.hold = holding  # type: ignore[method-assign]
    return held


async def until_held(holds: dict[str, asyncio.Event], task_id: str) -> None:
    async with asyncio.timeout(DEADLINE):
        await holds.setdefault(task_id, asyncio.Event()).wait()


async def saves_per_task(
    rabbitmq_factory: QueueFactory, path: Path, *, mark_delay: float, tasks: int = 3
) -> list[int]:
    queue = await rabbitmq_factory()
    store = CountingStore(path)
    async with served(queue, store) as system:
        system.control_plane.manager.marks.delay = mark_delay
        await system.add(ReadmeService(queue, "worker"))
        task_ids = []
        for n in range(tasks):  # sent to the service directly: no orchestrator in between
            created = await system.http.post(
                "/tasks", json={"input": f"job {n}", "service": "worker"}
            )
            assert created.status_code == 200, created.text
            task_ids.append(created.json()["task_id"])
        for task_id in task_ids:
            # Finished, and its result's publish saved (the task's last write).
            record = await system.control_plane.manager.wait_until(
                task_id, lambda r: r.result_published, timeout=DEADLINE
            )
            assert record.status is TaskStatus.COMPLETED, record.error
            assert record.steps[0].published
        assert len(system.control_plane.manager.marks) == 0
        return [store.saves[task_id] for task_id in task_ids]


async def test_a_step_answered_soon_costs_no_save_of_its_own(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    # Written at once: the step's mark, the result, the result's mark. Held: the step's mark
    # goes with the result.
    at_once = await saves_per_task(rabbitmq_factory, tmp_path / "a.sqlite3", mark_delay=0)
    assert at_once == [3, 3, 3]
    held = await saves_per_task(rabbitmq_factory, tmp_path / "b.sqlite3", mark_delay=DEADLINE)
    assert held == [2, 2, 2]


async def test_a_mark_no_save_takes_is_written_after_the_delay(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    service = ReadmeService(queue, "worker", hold=True)
    async with served(queue, tmp_path / "cp.sqlite3") as system:
        manager = system.control_plane.manager
        assert manager.marks.delay == TEST_MARK_DELAY  # held, then written alone
        # Long enough that a loaded machine still finds the mark held below (at 1 s, a CI
        # run once did not); short of uvicorn's 5 s keep-alive for the idle client.
        manager.marks.delay = 3.0
        holds = holds_of(manager.marks)
        await system.add(service)
        task_id = await system.create("worker: wait for me")
        await until_held(holds, task_id)
        assert manager.marks.held(task_id)  # not written yet: the store does not say it yet
        assert not (await manager.read(task_id)).steps[0].published
        # No save comes while the step is held: the mark is written alone.
        record = await system.published(task_id)
        assert record.steps[0].deadline_at is not None
        assert not manager.marks.held(task_id)
        service.gate.set()
        assert (await system.finished(task_id)).status is TaskStatus.COMPLETED


async def test_stopping_writes_held_marks_and_a_restart_does_not_send_the_step_again(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    path = tmp_path / "cp.sqlite3"
    queue = await rabbitmq_factory()
    service = ReadmeService(queue, "worker", hold=True)
    first = ControlPlaneServer(queue, RouteByInput(), SqliteStateStore(path))
    async with consuming(first):
        await first.register_service(service.service_definition)
        await service.launch_local()
        try:
            assert first.manager.marks.delay == DEFAULT_MARK_DELAY  # a store of its own
            first.manager.marks.delay = DEADLINE * 10  # only stopping writes it
            holds = holds_of(first.manager.marks)
            task_id = (await first.create_task("worker: once")).task_id
            await until_held(holds, task_id)
            assert first.manager.marks.held(task_id)
            # Read from the store again (dropped from the cache), the task carries its held
            # mark: a writer that flushes it does not publish the step again.
            first.manager.tasks.forget(task_id)
            assert (await first.manager.get(task_id)).steps[0].published
            assert not (await first.manager.read(task_id)).steps[0].published  # the store's
        except BaseException:  # let the held step go, or the teardown waits on it
            service.gate.set()
            await service.deregister_from_message_queue()
            raise
    stored = await SqliteStateStore(path).load_task(task_id)
    assert stored is not None and stored.body["steps"][0]["published"] is True

    # The service still holds the step; a new control plane on the same store recovers:
    # nothing unconfirmed to send again.
    second = ControlPlaneServer(await rabbitmq_factory(), RouteByInput(), SqliteStateStore(path))
    async with consuming(second):
        try:
            service.gate.set()
            record = await second.wait_for_status(task_id, {TaskStatus.COMPLETED}, timeout=DEADLINE)
            assert record.result is not None and record.result.result == "ONCE"
            assert service.inputs == ["once"], "the step was sent once"
        finally:
            await service.deregister_from_message_queue()


class FailingOnceStore(SqliteStateStore):
    """The SQLite store, failing once, when `armed`, the first save of an open task whose
    step is marked published: its held mark's own write."""

    armed = False

    async def save_task(self, row: TaskRow, **kwargs: Any) -> Any:
        steps = row.body.get("steps") or []
        marked = any(step.get("published") for step in steps)
        if self.armed and marked and row.status == TaskStatus.RUNNING.value:
            self.armed = False
            raise OSError("disk I/O error (injected)")
        return await super().save_task(row, **kwargs)


async def test_a_mark_whose_write_fails_is_written_again(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    store = FailingOnceStore(tmp_path / "cp.sqlite3")
    service = ReadmeService(queue, "worker", hold=True)
    async with served(queue, store) as system:
        manager = system.control_plane.manager
        manager.marks.delay = 0.2
        await system.add(service)
        store.armed = True  # the mark's own write fails once
        task_id = await system.create("worker: keep trying")
        record = await system.published(task_id)
        assert not store.armed, "the mark's write failed once"
        assert record.steps[0].published and not manager.marks.held(task_id)
        service.gate.set()
        assert (await system.finished(task_id)).status is TaskStatus.COMPLETED
    assert service.inputs == ["keep trying"]
