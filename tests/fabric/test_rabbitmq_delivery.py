"""RabbitMQ delivery hardening: a settle that fails, RabbitMQ 4's quorum-queue semantics,
credentials the broker refuses. Each test injects its fault on the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage
from yarl import URL

from llama_agents import (
    CallableMessageConsumer,
    ComponentService,
    ConfigurationError,
    QueueMessage,
)
from llama_agents.errors import BrokerAuthenticationError, BrokerUnavailableError
from llama_agents.message_queues.rabbitmq import RabbitMQMessageQueue
from llama_agents.message_queues.rabbitmq.topology import (
    DEAD_LETTER_DELIVERY_LIMIT,
    DELIVERY_LIMIT_HEADROOM,
    dead_letter_queue_name,
    queue_name,
)
from llama_agents.services.app import create_service_app
from tests.conftest import QueueFactory
from tests.support import broker
from tests.support.helpers import DEADLINE, Collector

pytestmark = pytest.mark.rabbitmq


async def _queue_arguments(name: str) -> dict[str, Any]:
    """The arguments the broker holds for queue `name`, as rabbitmqctl reports them."""
    rows = await broker.list_json("queues", "name", "arguments")
    [row] = [r for r in rows if r["name"] == name]
    arguments = row["arguments"]
    # rabbitmqctl's JSON gives [name, type, value] triples (a dict on some versions).
    return dict(arguments) if isinstance(arguments, dict) else {a[0]: a[-1] for a in arguments}


# -- a settle that fails must not stall the consumer (issue 9, item 1) --------------------


async def test_a_failed_settle_hands_the_message_back_and_the_consumer_goes_on(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    """The dead-letter queue is deleted under a running consumer with prefetch=1: the poison
    message cannot be dead-lettered. It must go back to the broker (not sit unacked), the
    failure must show, and the next message must still be delivered."""
    queue = await rabbitmq_factory(prefetch=1, max_attempts=1, max_redeliveries=1)
    good = Collector()

    async def handle(message: QueueMessage) -> None:
        if message.data.get("poison"):
            raise RuntimeError("cannot handle this one")
        await good.handle(message)

    consumer = CallableMessageConsumer(handler=handle, message_type="stall")
    start = await queue.register_consumer(consumer)
    consuming = asyncio.create_task(start())
    assert queue.is_healthy

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(dead_letter_queue_name(exchange_name))

    poison = QueueMessage(type="stall", data={"poison": True})
    after = QueueMessage(type="stall", data={"n": 1})
    await queue.publish(poison)
    await queue.publish(after)

    got = await good.wait_for(1, timeout=DEADLINE)
    assert [m.id_ for m in got] == [after.id_], "the consumer did not stall"
    # Each failed settle handed the message back, which the quorum queue counted: its
    # delivery limit bounded the loop, then the broker took over (it keeps the message for
    # the dead-letter queue, at least once, and moves it there once that exists again).
    assert queue.settle_failures == 1 + DELIVERY_LIMIT_HEADROOM + 1
    assert not queue.is_healthy, "a settle that keeps failing shows in the health signal"
    assert queue.health()["healthy"] is False
    assert queue.health()["broker_connected"] is True
    # A service on this queue says so on its /health, for the orchestrator's probe.
    service = ComponentService(str.upper, queue, "upper-cases", "upper")
    transport = httpx.ASGITransport(app=create_service_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        health = await http.get("/health")
    assert health.status_code == 503
    assert health.json()["healthy"] is False and health.json()["settle_failures"] >= 1
    consuming.cancel()


async def test_settle_failures_clear_once_dead_letters_go_through_again(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    queue = await rabbitmq_factory(prefetch=1, max_attempts=1, queue_type="classic")
    tries = Collector()

    async def fails(message: QueueMessage) -> None:
        await tries.handle(message)
        raise RuntimeError("always")

    start = await queue.register_consumer(CallableMessageConsumer(handler=fails, message_type="x"))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(dead_letter_queue_name(exchange_name))
    await queue.publish(QueueMessage(type="x"))
    consuming = asyncio.create_task(start())
    [subscription] = queue._subscriptions.values()
    # Delivered again: so its first settle failed and it was handed back, not held.
    await tries.wait_for(2)
    assert queue.settle_failures >= 1
    assert not queue.is_healthy
    # The dead-letter queue is back: the handed-back message is dead-lettered, health clears.
    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    assert "always" in letter.reason
    assert not subscription.degraded
    assert queue.is_healthy
    consuming.cancel()


# -- RabbitMQ 4 semantics: explicit delivery limit and dead-letter target (item 13) ---------


async def test_quorum_queues_declare_their_delivery_limit_and_dead_letter_target(
    rabbitmq_factory: QueueFactory, exchange_name: str, broker_control: None
) -> None:
    queue = await rabbitmq_factory(max_redeliveries=30)
    await queue.declare_queue("work")
    await queue.fetch_dead_letters()  # declares the dead-letter queue

    work = await _queue_arguments(queue_name(exchange_name, "work"))
    assert work["x-queue-type"] == "quorum"
    # Above RabbitMQ 4's default of 20, and above max_redeliveries: our own check
    # dead-letters a crash loop first, with a reason.
    assert work["x-delivery-limit"] == 30 + DELIVERY_LIMIT_HEADROOM
    assert work["x-dead-letter-exchange"] == ""
    assert work["x-dead-letter-routing-key"] == dead_letter_queue_name(exchange_name)
    assert work["x-dead-letter-strategy"] == "at-least-once"
    assert work["x-overflow"] == "reject-publish"

    dead = await _queue_arguments(dead_letter_queue_name(exchange_name))
    assert dead["x-delivery-limit"] == DEAD_LETTER_DELIVERY_LIMIT
    assert "x-dead-letter-exchange" not in dead, "the end of the line"


async def test_the_brokers_delivery_limit_dead_letters_instead_of_dropping(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    """A client of ours that is not consuming through llama-agents keeps handing a message
    back: the broker's limit moves it to the dead-letter queue, with a reason."""
    queue = await rabbitmq_factory(max_redeliveries=1)
    await queue.declare_queue("handed_back")
    await queue.fetch_dead_letters()
    message = QueueMessage(type="handed_back")
    await queue.publish(message)

    returns = 0

    async def hand_back(incoming: AbstractIncomingMessage) -> None:
        nonlocal returns
        returns += 1
        await incoming.reject(requeue=True)

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue_name(exchange_name, "handed_back"))
        tag = await amqp_queue.consume(hand_back)
        [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
        await amqp_queue.cancel(tag)
    assert returns == 1 + DELIVERY_LIMIT_HEADROOM + 1, "the limit ended the loop"
    assert letter.message().id_ == message.id_
    assert "delivery limit" in letter.reason and "delivery_limit" in letter.reason
    assert letter.queue == queue_name(exchange_name, "handed_back")
    assert letter.routing_key == "handed_back"


async def test_peeking_dead_letters_many_times_never_loses_them(
    rabbitmq_factory: QueueFactory,
) -> None:
    """Every peek hands the messages back, which counts a delivery on a quorum queue: more
    peeks than RabbitMQ 4's default limit (20) must lose nothing."""
    queue = await rabbitmq_factory(max_attempts=1)

    async def fails(message: QueueMessage) -> None:
        raise RuntimeError("nope")

    start = await queue.register_consumer(CallableMessageConsumer(handler=fails, message_type="p"))
    consuming = asyncio.create_task(start())
    for n in range(2):
        await queue.publish(QueueMessage(type="p", data={"n": n}))
    await queue.fetch_dead_letters(wait_for=2, remove=False, timeout=DEADLINE)
    for _ in range(25):
        peeked = await queue.fetch_dead_letters(remove=False)
        assert sorted(letter.message().data["n"] for letter in peeked) == [0, 1]
    taken = await queue.fetch_dead_letters()
    assert sorted(letter.message().data["n"] for letter in taken) == [0, 1]
    assert await queue.fetch_dead_letters() == []
    consuming.cancel()


async def test_an_existing_queue_with_other_arguments_is_a_clear_error(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    """A queue declared by an older version (plain quorum, no delivery limit)."""
    name = queue_name(exchange_name, "legacy")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    queue = await rabbitmq_factory()
    with pytest.raises(ConfigurationError) as excinfo:
        await queue.declare_queue("legacy")
    text = str(excinfo.value)
    assert name in text
    assert "inequivalent arg" in text, "the broker's words name the argument"
    assert "delete the queue" in text
    async with await aio_pika.connect(amqp_url) as cleanup:
        await (await cleanup.channel()).queue_delete(name)


# -- credentials the broker refuses (item 20) ----------------------------------------------


async def test_a_wrong_password_is_reported_at_once_as_such(amqp_url: str) -> None:
    url = str(URL(amqp_url).with_password("not-the-password"))
    queue = RabbitMQMessageQueue(url=url, exchange_name="refused", connect_timeout=10)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(BrokerAuthenticationError) as excinfo:
        await queue.connect()
    assert loop.time() - began < 5, "not retried"
    text = str(excinfo.value)
    assert "refused the login" in text
    user = URL(amqp_url).user or "guest"
    assert repr(user) in text
    assert "not-the-password" not in text, "the password is never shown"
    assert "Is the broker running" not in text
    assert not isinstance(excinfo.value, BrokerUnavailableError), "waiting cannot fix it"
    # Publishing says the same, also at once.
    with pytest.raises(BrokerAuthenticationError):
        await queue.publish(QueueMessage(type="anything"))
    await queue.close()
