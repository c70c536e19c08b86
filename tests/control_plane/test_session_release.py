"""A session's next task starts when its active one ends, even when the control plane dies
right as that one ends: the session is released before the ended task is marked done with
(its result published), so a restart still finds that task to recover and releases it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llama_agents import ControlPlaneServer, TaskDefinition, TaskStatus
from llama_agents.control_plane.state import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.control_plane import consuming
from tests.support.hardening import ReadmeService, RouteByInput
from tests.support.helpers import DEADLINE

pytestmark = pytest.mark.rabbitmq


async def test_a_control_plane_dying_as_a_session_task_ends_does_not_hold_the_session(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    path = tmp_path / "cp.sqlite3"
    queue = await rabbitmq_factory()
    # The first task's step never gets an answer (a late one would end it again, and so
    # release the session by another way); the second's does.
    slow = ReadmeService(queue, "slow", hold=True)
    worker = ReadmeService(queue, "worker")
    first = ControlPlaneServer(queue, RouteByInput(), SqliteStateStore(path))
    died = asyncio.Event()

    async def dies_here(session_id: str, task_id: str) -> str | None:
        died.set()  # the process ends here: nothing after this line runs
        await asyncio.Event().wait()
        return None

    async with consuming(first):
        for service in (slow, worker):
            await first.register_service(service.service_definition)
            await service.launch_local()
        try:
            session_id = (await first.manager.sessions.create()).session_id
            one, two = [
                (await first.create_task(TaskDefinition(input=text, session_id=session_id))).task_id
                for text in ("slow: one", "worker: two")
            ]
            async with asyncio.timeout(DEADLINE):
                await slow.started.wait()  # the first task's step; the second waits its turn
            assert (await first.manager.sessions.get(session_id)).queued == [two]
            first.manager.sessions.finished = dies_here  # type: ignore[method-assign]
            cancelling = asyncio.create_task(first.cancel_task(one))
            async with asyncio.timeout(DEADLINE):
                await died.wait()
            assert (await first.manager.read(one)).status is TaskStatus.CANCELLED  # saved
            cancelling.cancel()
        except BaseException:
            await stopped(slow, worker)
            raise

    # A new control plane on the same store moves the session on to its second task.
    second = ControlPlaneServer(await rabbitmq_factory(), RouteByInput(), SqliteStateStore(path))
    async with consuming(second):
        try:
            record = await second.wait_for_status(two, {TaskStatus.COMPLETED}, timeout=DEADLINE)
            assert record.result is not None and record.result.result == "TWO"
            ended = await second.manager.read(one)
            assert ended.status is TaskStatus.CANCELLED and ended.result_published
            session = await second.manager.sessions.get(session_id)
            assert session.tasks == [one, two] and session.queued == []
            assert worker.inputs == ["two"] and slow.inputs == ["one"]
        finally:
            await stopped(slow, worker)


async def stopped(*services: ReadmeService) -> None:
    """Held steps let go, then the services leave the queue (the teardown waits on neither)."""
    for service in services:
        service.gate.set()
    for service in services:
        await service.deregister_from_message_queue()
