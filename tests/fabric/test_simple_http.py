"""The embedded queue served over HTTP, and its client used from 'another process'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from llama_agents import (
    MessageQueueError,
    QueueMessage,
    RemoteMessageConsumer,
    SimpleMessageQueue,
    UnroutableMessageError,
)
from llama_agents.errors import ConsumerNotFoundError
from tests.support.helpers import DEADLINE, Collector
from tests.support.receiver import serving_receiver


@pytest.fixture
async def served() -> AsyncIterator[SimpleMessageQueue]:
    queue = SimpleMessageQueue(host="127.0.0.1", port=0, max_attempts=2)
    task = asyncio.create_task(queue.launch_server())
    await queue.wait_until_serving()
    yield queue
    await queue.close()
    await asyncio.wait_for(task, DEADLINE)


async def test_client_publishes_to_an_in_process_consumer(served: SimpleMessageQueue) -> None:
    collector = Collector()
    start = await served.register_consumer(collector.consumer("local"))
    consuming = asyncio.create_task(start())
    client = served.client
    message = QueueMessage(type="local", data={"from": "client"})
    await client.publish(message)
    [got] = await collector.wait_for(1)
    assert got.id_ == message.id_ and got.data == {"from": "client"}
    with pytest.raises(UnroutableMessageError):
        await client.publish(QueueMessage(type="nobody"))
    await client.close()
    consuming.cancel()


async def test_remote_consumer_registered_through_the_client(served: SimpleMessageQueue) -> None:
    client = served.client
    async with serving_receiver() as receiver:
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="remote")
        start = await client.register_consumer(consumer)
        await start()  # returns at once: the server already delivers to the URL
        listed = await client.list_consumers()
        assert [(c["id_"], c["message_type"], c["url"]) for c in listed] == [
            (consumer.id_, "remote", receiver.url)
        ]

        message = QueueMessage(type="remote", data={"n": 1})
        await client.publish(message)
        [got] = await receiver.collector.wait_for(1)
        assert got.id_ == message.id_

        await client.deregister_consumer(consumer)
        assert await client.list_consumers() == []
        with pytest.raises(ConsumerNotFoundError):
            await client.deregister_consumer(consumer)
    await client.close()


async def test_failing_remote_endpoint_is_retried_then_dead_lettered(
    served: SimpleMessageQueue,
) -> None:
    client = served.client
    async with serving_receiver() as receiver:
        receiver.status = 500
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="flaky_remote")
        await client.register_consumer(consumer)
        message = QueueMessage(type="flaky_remote")
        await client.publish(message)
        [letter] = await client.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
        assert letter.attempts == 2
        assert "500" in letter.reason
        assert letter.message().id_ == message.id_
        assert receiver.requests == 2
    await client.close()


async def test_server_refuses_bad_input(served: SimpleMessageQueue) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        response = await http.post("/publish", content=b"not json")
        assert response.status_code == 422
        assert "cannot decode" in response.json()["detail"]
        response = await http.post("/register_consumer", json={"id_": "x"})
        assert response.status_code == 422
        response = await http.post("/queues/bad%20name")
        assert response.status_code == 422
        status = await http.get("/")
        assert status.json()["status"] == "running"
    client = served.client
    with pytest.raises(MessageQueueError, match="422"):
        await client.publish_raw(b"garbage", "anything")
    with pytest.raises(TypeError, match="RemoteMessageConsumer"):
        await client.register_consumer(Collector().consumer("x"))
    await client.close()


async def test_client_reports_an_unreachable_server() -> None:
    client = SimpleMessageQueue(host="127.0.0.1", port=1).client
    with pytest.raises(MessageQueueError, match="cannot reach"):
        await client.publish(QueueMessage(type="x"))
    await client.close()
