"""A cancelled task's step that waited in the queue while its service was down is not run
when the service comes back (issue 9, item 19): with a paid LLM behind the service, that
would be money spent on an answer nobody wants. The service counts what it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_agents import TaskStatus
from llama_agents.messages.envelope import utc_now
from llama_agents.services.base import STALE_GRACE
from tests.conftest import QueueFactory
from tests.support.hardening import ReadmeService, clock_passes, served


@pytest.mark.rabbitmq
async def test_a_cancelled_tasks_queued_step_is_not_run_when_its_service_comes_back(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    # One step at a time, in queue order: once the task queued behind the cancelled one is
    # done, the cancelled one's step has been taken off the queue too.
    service = ReadmeService(await rabbitmq_factory(), "llm", max_concurrent_tasks=1)
    async with served(queue, tmp_path / "cp.sqlite3") as system:
        await system.control_plane.register_service(service.service_definition)
        await service.message_queue.declare_queue("llm")  # the service is down
        unwanted = await system.create("llm: an answer nobody wants")
        await system.published(unwanted)
        cancelled = await system.http.post(f"/tasks/{unwanted}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        wanted = await system.create("llm: an answer somebody wants")
        await system.published(wanted)
        # The service stays down for longer than a replica's grace for steps published
        # before it listened for cancels (clocks of two hosts may differ that much).
        await clock_passes(utc_now() + STALE_GRACE)

        await system.add(service)
        done = await system.finished(wanted)
        assert done.status is TaskStatus.COMPLETED, done.error
        assert done.result is not None and done.result.result == "AN ANSWER SOMEBODY WANTS"
        assert service.inputs == ["an answer somebody wants"], "the cancelled step ran"
        record = await system.control_plane.get_task(unwanted)
        assert record.status is TaskStatus.CANCELLED
        assert record.steps[0].result is None
