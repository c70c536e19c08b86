"""RabbitMQ only: the declared topology as the broker reports it, and broker-specific rules."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest

from llama_agents import (
    BrokerUnavailableError,
    CallableMessageConsumer,
    ConfigurationError,
    QueueMessage,
    RabbitMQMessageQueue,
)
from llama_agents.message_queues.rabbitmq.topology import queue_name
from tests.conftest import QueueFactory
from tests.support import broker
from tests.support.helpers import DEADLINE, Collector


@pytest.mark.rabbitmq
async def test_topology_matches_the_design(
    rabbitmq_factory: QueueFactory, exchange_name: str, broker_control: None
) -> None:
    queue = await rabbitmq_factory()
    worker = Collector()
    start = await queue.register_consumer(worker.consumer("secret_fact_agent"))
    consuming = asyncio.create_task(start())
    await queue.declare_human_queue()
    await queue.declare_queue("control_plane")

    exchanges = {
        e["name"]: e for e in await broker.list_json("exchanges", "name", "type", "durable")
    }
    assert exchanges[exchange_name]["type"] == "topic"
    assert exchanges[exchange_name]["durable"] is True

    queues = {
        q["name"]: q
        for q in await broker.list_json("queues", "name", "durable", "type", "consumers")
        if q["name"].startswith(exchange_name + ".")
    }
    assert set(queues) == {
        f"{exchange_name}.secret_fact_agent",
        f"{exchange_name}.human",
        f"{exchange_name}.control_plane",
        f"{exchange_name}.dead_letter",
    }
    for row in queues.values():
        assert row["durable"] is True
        assert row["type"] == "quorum"

    bindings = {
        (b["destination_name"], b["routing_key"])
        for b in await broker.list_json(
            "bindings", "source_name", "destination_name", "routing_key"
        )
        if b["source_name"] == exchange_name
    }
    assert bindings == {
        (f"{exchange_name}.secret_fact_agent", "secret_fact_agent"),
        (f"{exchange_name}.human", "human"),
        (f"{exchange_name}.control_plane", "control_plane"),
    }, "the dead-letter queue is written directly, never bound to the exchange"

    # The consumer is attached to its queue once consuming started: manual acks, prefetch.
    message = QueueMessage(type="secret_fact_agent")
    await queue.publish(message)
    await worker.wait_for(1)
    [consumer] = [
        c
        for c in await broker.list_json("consumers", "queue_name", "ack_required", "prefetch_count")
        if c["queue_name"] == f"{exchange_name}.secret_fact_agent"
    ]
    assert consumer["ack_required"] is True
    assert consumer["prefetch_count"] == 10
    consuming.cancel()


@pytest.mark.rabbitmq
async def test_classic_queue_type_is_configurable(
    rabbitmq_factory: QueueFactory, exchange_name: str, broker_control: None
) -> None:
    queue = await rabbitmq_factory(queue_type="classic")
    await queue.declare_queue("plain")
    [row] = [
        q
        for q in await broker.list_json("queues", "name", "type", "durable")
        if q["name"] == f"{exchange_name}.plain"
    ]
    assert row["type"] == "classic"
    assert row["durable"] is True


@pytest.mark.rabbitmq
async def test_queue_type_mismatch_is_a_clear_error(rabbitmq_factory: QueueFactory) -> None:
    quorum = await rabbitmq_factory()
    await quorum.declare_queue("shared")
    classic = await rabbitmq_factory(queue_type="classic")
    with pytest.raises(ConfigurationError, match="already exists with other settings"):
        await classic.declare_queue("shared")


@pytest.mark.rabbitmq
async def test_messages_are_persistent_and_carry_their_metadata(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    queue = await rabbitmq_factory()
    await queue.declare_queue("inspect")
    message = QueueMessage(
        type="inspect", publisher_id="tester", correlation_id="corr-1", reply_to="replies"
    )
    await queue.publish(message)

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue_name(exchange_name, "inspect"))
        incoming = await amqp_queue.get(timeout=DEADLINE)
        assert incoming is not None
        assert incoming.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert incoming.content_type == "application/json"
        assert incoming.message_id == message.id_
        assert incoming.correlation_id == "corr-1"
        assert incoming.reply_to == "replies"
        assert incoming.app_id == "tester"
        assert json.loads(incoming.body)["id_"] == message.id_
        await incoming.nack(requeue=True)


@pytest.mark.rabbitmq
async def test_unacknowledged_message_goes_to_another_consumer_when_one_dies(
    rabbitmq_factory: QueueFactory,
) -> None:
    """Acks come after the handler: a consumer that dies mid-message loses nothing."""
    doomed_queue = await rabbitmq_factory(drain_timeout=0.5)
    survivor_queue = await rabbitmq_factory()
    entered = asyncio.Event()

    async def never_finishes(message: QueueMessage) -> None:
        entered.set()
        await asyncio.Event().wait()  # stuck until cancelled by the drain at teardown

    doomed = CallableMessageConsumer(handler=never_finishes, message_type="fragile")
    start = await doomed_queue.register_consumer(doomed)
    doomed_task = asyncio.create_task(start())
    message = QueueMessage(type="fragile", data={"n": 1})
    await doomed_queue.publish(message)
    async with asyncio.timeout(DEADLINE):
        await entered.wait()

    survivor = Collector()
    start_survivor = await survivor_queue.register_consumer(survivor.consumer("fragile"))
    survivor_task = asyncio.create_task(start_survivor())
    # The first process "dies": its connection drops with the message unacknowledged.
    assert doomed_queue._connection is not None
    await doomed_queue._connection.close()

    got = await survivor.wait_for(1)
    assert [m.id_ for m in got] == [message.id_]
    doomed_task.cancel()
    survivor_task.cancel()


@pytest.mark.rabbitmq
async def test_crash_looping_message_is_dead_lettered(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    """Quorum queues count redeliveries: a message whose consumers keep dying is parked."""
    queue = await rabbitmq_factory(max_redeliveries=2)
    await queue.declare_queue("crashy")
    message = QueueMessage(type="crashy")
    await queue.publish(message)

    # Two consumers die holding the message (channel closed without an ack).
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for _ in range(2):
            channel = await connection.channel()
            amqp_queue = await channel.get_queue(queue_name(exchange_name, "crashy"))
            incoming = await amqp_queue.get(timeout=DEADLINE)
            assert incoming is not None
            await channel.close()

    handled = Collector()
    start = await queue.register_consumer(handled.consumer("crashy"))
    consuming = asyncio.create_task(start())
    [letter] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    assert "redelivered 2 times" in letter.reason
    assert letter.message().id_ == message.id_
    assert handled.messages == []
    consuming.cancel()


@pytest.mark.rabbitmq
async def test_foreign_producer_garbage_is_dead_lettered(
    rabbitmq_factory: QueueFactory, amqp_url: str, exchange_name: str
) -> None:
    queue = await rabbitmq_factory()
    collector = Collector()
    start = await queue.register_consumer(collector.consumer("intake"))
    consuming = asyncio.create_task(start())

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name)
        await exchange.publish(aio_pika.Message(body=b"<xml>not ours</xml>"), "intake")
        await exchange.publish(
            aio_pika.Message(body=json.dumps({"type": "intake", "schema_version": 99}).encode()),
            "intake",
        )
    good = QueueMessage(type="intake")
    await queue.publish(good)

    letters = await queue.fetch_dead_letters(wait_for=2, timeout=DEADLINE)
    reasons = sorted(letter.reason for letter in letters)
    assert any("Invalid JSON" in r for r in reasons)
    assert any("schema version 99" in r for r in reasons)
    assert [m.id_ for m in await collector.wait_for(1)] == [good.id_]
    consuming.cancel()


@pytest.mark.rabbitmq
async def test_dead_letters_can_be_read_without_removing_them(
    rabbitmq_factory: QueueFactory,
) -> None:
    queue = await rabbitmq_factory(max_attempts=1)

    async def fails(message: QueueMessage) -> None:
        raise RuntimeError("nope")

    start = await queue.register_consumer(CallableMessageConsumer(handler=fails, message_type="x"))
    consuming = asyncio.create_task(start())
    for n in range(3):
        await queue.publish(QueueMessage(type="x", data={"n": n}))
    peeked = await queue.fetch_dead_letters(wait_for=3, remove=False, timeout=DEADLINE)
    assert len(peeked) == 3
    first_two = await queue.fetch_dead_letters(limit=2)
    rest = await queue.fetch_dead_letters()
    assert len(first_two) == 2 and len(rest) == 1
    assert sorted(letter.message().data["n"] for letter in first_two + rest) == [0, 1, 2]
    consuming.cancel()


async def test_unreachable_broker_is_a_clear_error() -> None:
    queue = RabbitMQMessageQueue(
        url="amqp://guest:secret@127.0.0.1:1/", exchange_name="nowhere", connect_timeout=2
    )
    with pytest.raises(BrokerUnavailableError) as excinfo:
        await queue.publish(QueueMessage(type="anything"))
    assert "127.0.0.1:1" in str(excinfo.value)
    assert "secret" not in str(excinfo.value), "credentials never appear in errors"
    await queue.close()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_AGENTS_AMQP_URL", "amqp://u:p@broker.example:5673/vh")
    monkeypatch.setenv("LLAMA_AGENTS_EXCHANGE", "prod_system")
    queue = RabbitMQMessageQueue()
    assert queue.url == "amqp://u:p@broker.example:5673/vh"
    assert queue.exchange_name == "prod_system"
    assert "p@" not in repr(queue)
    explicit = RabbitMQMessageQueue(url="amqp://localhost/", exchange_name="mine")
    assert explicit.url == "amqp://localhost/" and explicit.exchange_name == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queue_type": "stream"}, "stream"),
        ({"prefetch": 0}, "prefetch"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"publish_timeout": 0}, "publish_timeout"),
        ({"exchange_name": "bad name"}, "not a valid"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RabbitMQMessageQueue(url="amqp://localhost/", **kwargs)  # type: ignore[arg-type]
