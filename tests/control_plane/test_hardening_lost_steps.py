"""Steps that can never come back end or restart their task (issue 9, item 2): a step
dead-lettered because its replicas kept dying on it fails its task with the reason (the
dead-letter path tells the control plane); a step lost with the embedded queue when
everything stopped mid-task is sent again by the restarted control plane, and the task
completes (the README's server flow: tasks persist, queued steps do not)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import pytest

from llama_agents import ControlPlaneServer, SimpleMessageQueue, TaskStatus
from llama_agents.message_queues.rabbitmq.topology import queue_name
from tests.conftest import QueueFactory
from tests.support.hardening import FINISHED, ReadmeService, RouteByInput, served, state_store
from tests.support.helpers import DEADLINE


@pytest.mark.rabbitmq
async def test_a_step_dead_lettered_after_its_replicas_crash_on_it_fails_its_task(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str, tmp_path: Path
) -> None:
    queue = await rabbitmq_factory()
    service_queue = await rabbitmq_factory(max_redeliveries=2)
    service = ReadmeService(service_queue, "fragile")
    async with served(queue, tmp_path / "cp.sqlite3") as system:
        await system.control_plane.register_service(service.service_definition)
        await service_queue.declare_queue("fragile")
        task_id = await system.create("fragile: crash on me")
        await system.published(task_id)

        # Two replicas die holding the step (their channel closes without an ack).
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            for _ in range(2):
                channel = await connection.channel()
                amqp_queue = await channel.get_queue(queue_name(exchange_name, "fragile"))
                assert await amqp_queue.get(timeout=DEADLINE) is not None
                await channel.close()

        # The next replica dead-letters the crash loop instead of running it again.
        await system.add(service)
        record = await system.finished(task_id)
        assert record.status is TaskStatus.FAILED
        assert record.error is not None
        assert "dead-lettered" in record.error and "redelivered 2 times" in record.error, (
            record.error
        )
        assert service.inputs == [], "the crash loop was not run again"
        [letter] = await service_queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
        assert letter.message().data["task_id"] == task_id


async def test_a_step_lost_with_the_embedded_queue_is_sent_again_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cp.sqlite3"
    # The first run: the service holds the step when everything stops (Ctrl-C).
    first_queue = SimpleMessageQueue(drain_timeout=0.2)
    first_service = ReadmeService(first_queue, "worker", hold=True)
    async with served(first_queue, path) as first:
        await first.add(first_service)
        task_id = await first.create("worker: finish me")
        async with asyncio.timeout(DEADLINE):
            await first_service.started.wait()
        await first_service.deregister_from_message_queue()  # its step dies unacknowledged
        first.services.clear()
    await first_queue.close()
    assert first_service.inputs == ["finish me"]

    # Everything starts again: a new queue (the old one's messages are gone), the same state.
    second_queue = SimpleMessageQueue()
    second_service = ReadmeService(second_queue, "worker")
    await second_service.launch_local()
    control_plane = ControlPlaneServer(second_queue, RouteByInput(), state_store(path))
    consuming = asyncio.create_task((await control_plane.register_to_message_queue())())
    try:
        record = await control_plane.wait_for_status(task_id, FINISHED, timeout=DEADLINE)
        assert record.status is TaskStatus.COMPLETED, record.error
        assert record.result is not None and record.result.result == "FINISH ME"
        assert second_service.inputs == ["finish me"]
    finally:
        await second_service.deregister_from_message_queue()
        await control_plane.close()
        consuming.cancel()
        await second_queue.close()
