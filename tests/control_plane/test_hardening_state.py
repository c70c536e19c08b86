"""A save that fails leaves nothing behind that the store does not hold (issue 9, item 8):
the cached record is the stored one again, so the redelivered result that caused the save
is applied, not taken for a duplicate, and ends up in the database file. The failure is
injected in SQLite itself. Both queues.

Already proven elsewhere, not repeated here: SQLite commits survive the process
(`test_state_store.py::test_commits_survive_the_process_by_default_and_power_loss_when_asked`),
and a COMMIT that fails is rolled back so later writes succeed
(`test_state_store.py::test_a_failed_commit_is_rolled_back_and_the_store_keeps_working`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from llama_agents import TaskRecord, TaskStatus
from llama_agents.control_plane.models import StepRecord, StepStatus
from llama_agents.control_plane.task_repository import TaskRepository
from tests.conftest import QueueFactory
from tests.support.hardening import (
    ReadmeService,
    fail_first_step_result_save,
    served,
    state_store,
    stored_task,
)
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator


async def test_a_result_whose_save_failed_is_applied_when_it_is_redelivered(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    path = tmp_path / "cp.sqlite3"
    store = state_store(path)
    queue = await queue_factory()  # a failed handler's message is retried (max_attempts=3)
    # Two steps at once: the first one's result changes nothing but the task's record
    # (the second one is still running), so nothing else would save it later.
    async with served(queue, store, FanOutOrchestrator(["quick", "slow"])) as system:
        quick = ReadmeService(queue, "quick", echo_step_id=True)
        slow = ReadmeService(queue, "slow", hold=True, echo_step_id=True)
        await system.add(quick)
        await system.add(slow)
        fault = await fail_first_step_result_save(store)
        task_id = await system.create("do it")
        await fault.wait()
        assert fault.hit == [task_id], "the first save of the quick step's result failed"

        def quick_result_stored(_: object) -> bool:
            on_disk = stored_task(path, task_id)
            return on_disk is not None and on_disk["steps"][0]["status"] == "completed"

        # Checked again at every save of the task, against the database file itself.
        try:
            await system.control_plane.manager.wait_until(
                task_id, quick_result_stored, timeout=DEADLINE
            )
        except TimeoutError:
            pytest.fail("the retried result of the quick step never reached the database")
        on_disk = await asyncio.to_thread(stored_task, path, task_id)
        assert on_disk is not None and on_disk["status"] == "running"
        assert on_disk["steps"][0]["result"]["result"] == "DO IT"

        slow.gate.set()
        record = await system.finished(task_id)
        assert record.status is TaskStatus.COMPLETED, record.error
        assert record.result is not None and record.result.result == "DO IT | DO IT"
        assert (quick.inputs, slow.inputs) == (["do it"], ["do it"]), "no step ran twice"
    await store.close()


async def test_after_a_failed_save_readers_get_the_record_the_store_has(tmp_path: Path) -> None:
    store = state_store(tmp_path / "cp.sqlite3")
    tasks = TaskRepository(store)
    await tasks.insert(
        TaskRecord(
            task_id="t1",
            input="x",
            status=TaskStatus.RUNNING,
            steps=[StepRecord(step_id="s1", service="worker", published=True)],
        )
    )
    fault = await fail_first_step_result_save(store)
    record = await tasks.load("t1")
    assert record is not None
    record.steps[0].status = StepStatus.COMPLETED  # what recording a result changes
    with pytest.raises(sqlite3.IntegrityError, match="injected by the test"):
        await tasks.save(record)
    assert fault.hit == ["t1"]
    again = await tasks.load("t1")
    assert again is not None and again.steps[0].status is StepStatus.PENDING
    again.steps[0].status = StepStatus.COMPLETED
    await tasks.save(again)  # the retry is applied, and stored
    stored = await TaskRepository(store).load("t1")  # a fresh cache: from the store
    assert stored is not None and stored.steps[0].status is StepStatus.COMPLETED
    await store.close()


async def test_a_change_being_saved_is_not_seen_before_it_is_stored(tmp_path: Path) -> None:
    store = state_store(tmp_path / "cp.sqlite3")
    tasks = TaskRepository(store)
    await tasks.insert(
        TaskRecord(
            task_id="t1",
            input="x",
            status=TaskStatus.RUNNING,
            steps=[StepRecord(step_id="s1", service="worker", published=True)],
        )
    )
    fault = await fail_first_step_result_save(store, paused=True)
    record = await tasks.load("t1")
    assert record is not None
    record.steps[0].status = StepStatus.COMPLETED
    saving = asyncio.ensure_future(tasks.save(record))
    await fault.wait()  # the save is inside SQLite now, and will fail
    seen = await tasks.snapshot("t1")  # a reader meanwhile (GET /tasks/{id}, a stream...)
    fault.release.set()
    with pytest.raises(sqlite3.IntegrityError, match="injected by the test"):
        await saving
    after = await tasks.load("t1")  # the next writer, after the failed save
    await store.close()
    assert seen is not None
    assert seen.steps[0].status is StepStatus.PENDING, "a reader saw a change never stored"
    assert after is not None and after is not record
    assert after.steps[0].status is StepStatus.PENDING
