"""`cleanup()` removes only what its queue object created and nobody uses (issue 9, item 6):
a `LocalLauncher` run against a live system on the same exchange must leave that system's
queues, and their messages, alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from llama_agents import (
    CallableMessageConsumer,
    ComponentService,
    ControlPlaneServer,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    QueueMessage,
    ServiceStep,
)
from llama_agents.message_queues.rabbitmq.topology import queue_name
from tests.conftest import QueueFactory
from tests.support import broker
from tests.support.helpers import DEADLINE, Collector

pytestmark = pytest.mark.rabbitmq


async def test_local_launcher_leaves_a_live_system_on_its_exchange_alone(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    # The live system: a worker consuming its queue, a result nobody has read yet, a dead
    # letter waiting for an operator.
    live = await rabbitmq_factory(max_attempts=1)
    worker = Collector()
    consuming = asyncio.create_task((await live.register_consumer(worker.consumer("worker")))())
    await live.declare_human_queue()
    unread = QueueMessage(type="human", data={"result": "kept"})
    await live.publish(unread)

    async def fails(message: QueueMessage) -> None:
        raise RuntimeError("for the operator")

    failing = CallableMessageConsumer(handler=fails, message_type="flaky")
    flaky = asyncio.create_task((await live.register_consumer(failing))())
    await live.publish(QueueMessage(type="flaky"))
    await live.fetch_dead_letters(wait_for=1, remove=False, timeout=DEADLINE)
    await live.deregister_consumer(failing)
    flaky.cancel()

    # A script runs the README's local flow on the same exchange, then cleans up.
    launched = await rabbitmq_factory()
    service = ComponentService(lambda s: s.upper(), launched, "Shouts.", "shouter")
    control_plane = ControlPlaneServer(
        launched, PipelineOrchestrator(Pipeline.sequence(ServiceStep("shouter")))
    )
    launcher = LocalLauncher([service], control_plane, launched)
    assert await launcher.alaunch_single("hi", timeout=DEADLINE) == "HI"

    def counts(message_type: str) -> Awaitable[tuple[int, int] | None]:
        return broker.queue_counts(amqp_url, queue_name(exchange_name, message_type))

    # The live system's queues survive, with their messages and consumers.
    assert await counts("worker") == (0, 1)
    human = await counts("human")
    assert human is not None and human[0] >= 1, "the unread result is still there"
    assert await counts("dead_letter") == (1, 0)
    # What only the launcher created is gone.
    assert await counts("shouter") is None
    assert await counts("control_plane") is None

    # The live worker still gets its messages, and the unread result is still there.
    job = QueueMessage(type="worker")
    await live.publish(job)
    assert [m.id_ for m in await worker.wait_for(1)] == [job.id_]
    reader = Collector()
    reading = asyncio.create_task((await live.register_consumer(reader.consumer("human")))())
    await reader.wait_until(lambda: unread.id_ in reader.ids)
    consuming.cancel()
    reading.cancel()


async def test_cleanup_deletes_what_it_created_when_idle(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    queue = await rabbitmq_factory()
    await queue.declare_queue("empty")
    await queue.declare_queue("full")
    await queue.publish(QueueMessage(type="full"))
    await queue.cleanup()
    assert await broker.queue_counts(amqp_url, queue_name(exchange_name, "empty")) is None
    # Never delete messages: a queue that holds some stays.
    assert await broker.queue_counts(amqp_url, queue_name(exchange_name, "full")) == (1, 0)
