"""Consumers: callables (sync and async) and remote HTTP endpoints."""

from __future__ import annotations

import asyncio

import pytest

from llama_agents import CallableMessageConsumer, QueueMessage, RemoteMessageConsumer
from llama_agents.errors import RemoteConsumerError
from tests.support.receiver import serving_receiver


async def test_async_handler_gets_the_message() -> None:
    got: list[QueueMessage] = []

    async def handler(message: QueueMessage) -> str:
        got.append(message)
        return "done"

    consumer = CallableMessageConsumer(handler=handler, message_type="t")
    message = QueueMessage(type="t")
    assert await consumer.process_message(message) == "done"
    assert got == [message]


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    def handler(message: QueueMessage) -> str:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        return message.id_

    consumer = CallableMessageConsumer(handler=handler, message_type="t")
    message = QueueMessage(type="t")
    assert await consumer.process_message(message) == message.id_


def test_consumer_arguments_are_validated() -> None:
    with pytest.raises(TypeError, match="callable"):
        CallableMessageConsumer(handler="not callable", message_type="t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefetch"):
        CallableMessageConsumer(handler=print, message_type="t", prefetch=0)
    with pytest.raises(ValueError, match="http"):
        RemoteMessageConsumer(url="ftp://x", message_type="t")


async def test_remote_consumer_posts_the_message() -> None:
    async with serving_receiver() as receiver:
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="t")
        message = QueueMessage(type="t", data={"k": "v"})
        await consumer.process_message(message)
        [got] = await receiver.collector.wait_for(1)
        assert got.id_ == message.id_ and got.data == {"k": "v"}
        await consumer.aclose()


async def test_remote_consumer_error_status_is_a_failure() -> None:
    async with serving_receiver() as receiver:
        receiver.status = 503
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="t")
        with pytest.raises(RemoteConsumerError, match="503"):
            await consumer.process_message(QueueMessage(type="t"))
        await consumer.aclose()


async def test_remote_consumer_timeout_is_a_failure() -> None:
    async with serving_receiver() as receiver:
        receiver.hang.set()
        consumer = RemoteMessageConsumer(url=receiver.url, message_type="t", timeout=0.3)
        with pytest.raises(RemoteConsumerError, match="did not answer"):
            await consumer.process_message(QueueMessage(type="t"))
        await consumer.aclose()


async def test_remote_consumer_unreachable_is_a_failure() -> None:
    consumer = RemoteMessageConsumer(url="http://127.0.0.1:1/x", message_type="t", timeout=2)
    with pytest.raises(RemoteConsumerError, match="cannot reach"):
        await consumer.process_message(QueueMessage(type="t"))
    await consumer.aclose()
