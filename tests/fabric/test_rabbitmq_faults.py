"""RabbitMQ fault injection: restart the broker, cut every connection, publish into an outage.

Each test leaves the broker running (the `broker_control` fixture restarts it if needed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llama_agents import PublishTimeoutError, QueueMessage
from tests.conftest import QueueFactory
from tests.support import broker
from tests.support.helpers import Collector

RECOVERY_DEADLINE = 90.0

pytestmark = [pytest.mark.broker_restart, pytest.mark.rabbitmq]


async def test_persistent_messages_survive_a_broker_restart(
    rabbitmq_factory: QueueFactory, broker_control: None
) -> None:
    queue = await rabbitmq_factory()
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("durable_work"))
    published = [QueueMessage(type="durable_work", data={"n": n}) for n in range(20)]
    for message in published:
        await queue.publish(message)

    connection = queue._connection
    assert connection is not None
    down = asyncio.Event()
    connection.close_callbacks.add(lambda *_: down.set())
    await broker.stop_app()
    try:
        async with asyncio.timeout(RECOVERY_DEADLINE):
            await down.wait()  # the client saw the broker go
        # Start consuming now, on the same queue object, while its connection is down: it
        # must wait until its channel is restored, then consume what was kept on disk.
        consuming = asyncio.create_task(start())
        await asyncio.sleep(0)
        assert not consuming.done()
    finally:
        await broker.start_app()
    collecting = asyncio.create_task(collector.wait_for(20, timeout=RECOVERY_DEADLINE))
    await asyncio.wait({consuming, collecting}, return_when=asyncio.FIRST_COMPLETED)
    assert not consuming.done(), f"consuming ended: {consuming.exception()!r}"
    got = await collecting
    assert sorted(m.id_ for m in got) == sorted(m.id_ for m in published)
    assert sorted(m.data["n"] for m in got) == list(range(20))
    consuming.cancel()


async def test_a_refused_reconnect_ends_consuming_with_an_authentication_error(
    amqp_url: str, exchange_name: str, broker_control: None
) -> None:
    """The broker changes the password under a running consumer, then drops the connection:
    reconnecting with the old password is refused. That is reported, not retried forever."""
    from yarl import URL

    from llama_agents import RabbitMQMessageQueue
    from llama_agents.errors import BrokerAuthenticationError

    user, password = f"llama_{exchange_name}", "first-password"
    await broker.add_user(user, password)
    url = str(URL(amqp_url).with_user(user).with_password(password))
    queue = RabbitMQMessageQueue(
        url=url, exchange_name=exchange_name, reconnect_interval=0.2, max_reconnect_interval=1
    )
    try:
        collector = Collector()
        consuming = asyncio.create_task(
            (await queue.register_consumer(collector.consumer("guarded")))()
        )
        await queue.publish(QueueMessage(type="guarded"))
        await collector.wait_for(1)

        await broker.change_password(user, "second-password")
        assert await broker.close_user_connections(user, "password changed") >= 1
        async with asyncio.timeout(RECOVERY_DEADLINE):
            with pytest.raises(BrokerAuthenticationError, match=f"user '{user}'"):
                await consuming
        assert not queue.is_connected
        with pytest.raises(BrokerAuthenticationError, match="refused the login"):
            await queue.publish(QueueMessage(type="guarded"))
    finally:
        await queue.close()
        await broker.delete_user(user)
        await broker.delete_system(amqp_url, exchange_name)


async def test_consumer_comes_back_after_all_connections_are_closed(
    rabbitmq_factory: QueueFactory, broker_control: None
) -> None:
    queue = await rabbitmq_factory()
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("resilient"))
    consuming = asyncio.create_task(start())
    before = QueueMessage(type="resilient", data={"phase": "before"})
    await queue.publish(before)
    await collector.wait_for(1)

    await broker.close_all_connections("llama-agents fault test")

    # Published from a second, fresh connection: only a restored consumer can receive it.
    publisher = await rabbitmq_factory()
    after = QueueMessage(type="resilient", data={"phase": "after"})
    await publisher.publish(after)
    got = await collector.wait_for(2, timeout=RECOVERY_DEADLINE)
    assert [m.id_ for m in got] == [before.id_, after.id_]
    assert queue.is_connected
    consuming.cancel()


async def test_publish_during_an_outage_times_out_instead_of_hanging(
    rabbitmq_factory: QueueFactory, broker_control: None
) -> None:
    queue = await rabbitmq_factory(publish_timeout=2.0)
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("outage"))
    consuming = asyncio.create_task(start())

    await broker.stop_app()
    try:
        lost = QueueMessage(type="outage", data={"during": True})
        async with asyncio.timeout(30):  # "never hangs": bounded by publish_timeout
            with pytest.raises(PublishTimeoutError, match="did not confirm"):
                await queue.publish(lost)
        assert not queue.is_connected
    finally:
        await broker.start_app()

    # Once the broker is back, the same object publishes and consumes again.
    after = QueueMessage(type="outage", data={"during": False})
    await queue.publish(after)
    got = await collector.wait_for(1, timeout=RECOVERY_DEADLINE)
    assert after.id_ in [m.id_ for m in got]
    consuming.cancel()


async def test_publish_waits_for_a_broker_that_comes_back_in_time(
    rabbitmq_factory: QueueFactory, broker_control: None
) -> None:
    queue = await rabbitmq_factory(publish_timeout=60.0)
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("patient"))
    consuming = asyncio.create_task(start())

    await broker.stop_app()
    try:
        message = QueueMessage(type="patient")
        publishing = asyncio.create_task(queue.publish(message))
        await asyncio.sleep(0)
        assert not publishing.done()
    finally:
        await broker.start_app()

    await asyncio.wait_for(publishing, RECOVERY_DEADLINE)
    got = await collector.wait_for(1, timeout=RECOVERY_DEADLINE)
    assert [m.id_ for m in got] == [message.id_]
    consuming.cancel()


async def test_declaring_during_an_outage_is_a_clear_error(
    rabbitmq_factory: QueueFactory, broker_control: None
) -> None:
    from llama_agents import BrokerUnavailableError

    queue = await rabbitmq_factory(connect_timeout=2.0)
    await queue.declare_queue("before")
    await broker.stop_app()
    try:
        async with asyncio.timeout(30):
            with pytest.raises(BrokerUnavailableError, match="cannot open a channel"):
                await queue.declare_queue("during")
    finally:
        await broker.start_app()
    await queue.declare_queue("after")  # and it recovers by itself


async def test_control_plane_health_follows_the_broker_connection(
    rabbitmq_factory: QueueFactory, broker_control: None, tmp_path: Path
) -> None:
    import httpx

    from llama_agents import ControlPlaneServer
    from llama_agents.control_plane import SqliteStateStore
    from tests.support.orchestrators import FanOutOrchestrator

    queue = await rabbitmq_factory()
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator(["worker"]), SqliteStateStore(tmp_path / "cp.db"), port=0
    )
    serving = asyncio.create_task(control_plane.launch_server())
    await control_plane.wait_until_serving()
    async with httpx.AsyncClient(base_url=control_plane.url) as http:
        assert (await http.get("/health")).status_code == 200
        await broker.stop_app()
        try:
            down = await http.get("/health")
            assert down.status_code == 503
            assert down.json() == {"status": "unhealthy", "broker_connected": False}
        finally:
            await broker.start_app()
    await control_plane.close()
    await asyncio.wait_for(serving, 30)
