"""The demo behind `llama-agents demo`: work sent between two consumers over the fabric.

It runs on RabbitMQ when a broker answers (`LLAMA_AGENTS_AMQP_URL`, else the local one)
and on the embedded queue otherwise, and says which it used.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from llama_agents._settings import DEFAULT_AMQP_URL, env_str
from llama_agents.errors import BrokerUnavailableError
from llama_agents.message_consumers import CallableMessageConsumer
from llama_agents.message_queues import BaseMessageQueue, RabbitMQMessageQueue, SimpleMessageQueue
from llama_agents.message_queues.rabbitmq.connection import redact
from llama_agents.messages import ActionTypes, QueueMessage, TaskDefinition, TaskResult

DEMO_INPUTS = (
    "A baby llama is called a cria.",
    "Llamas hum to each other.",
    "A group of llamas is called a herd.",
)


@dataclass
class DemoBroker:
    """The queue the demo runs on, and a human-readable name for it."""

    queue: BaseMessageQueue
    description: str


async def pick_broker(
    url: str | None = None, exchange: str | None = None, *, prefer: str = "auto"
) -> DemoBroker:
    """RabbitMQ if one answers (or if asked for), else the embedded queue."""
    url = url or env_str("AMQP_URL", DEFAULT_AMQP_URL)
    if prefer in ("auto", "rabbitmq"):
        rabbit = RabbitMQMessageQueue(
            url=url,
            exchange_name=exchange or f"llama_agents_demo_{uuid.uuid4().hex[:8]}",
            connect_timeout=3.0,
        )
        try:
            await rabbit.connect()
        except BrokerUnavailableError:
            if prefer == "rabbitmq":
                raise
        else:
            return DemoBroker(rabbit, f"RabbitMQ at {rabbit!r}")
    reason = "as asked" if prefer == "embedded" else f"no RabbitMQ answered at {redact(url)}"
    return DemoBroker(SimpleMessageQueue(), f"the embedded SimpleMessageQueue ({reason})")


async def run_fabric_demo(broker: DemoBroker, inputs: tuple[str, ...] = DEMO_INPUTS) -> list[str]:
    """Send each input to a `word_counter` consumer; collect its answers on `human`."""
    queue = broker.queue
    results: dict[str, str] = {}
    all_done = asyncio.Event()

    async def count_words(message: QueueMessage) -> None:
        task = TaskDefinition.from_data(message.data)
        answer = f"{len(task.input.split())} words in {task.input!r}"
        await queue.publish(
            QueueMessage(
                type="human",
                action=ActionTypes.COMPLETED_TASK,
                publisher_id="word_counter",
                data=TaskResult(task_id=task.task_id, result=answer).model_dump(mode="json"),
            )
        )

    async def human(message: QueueMessage) -> None:
        result = TaskResult.from_data(message.data)
        results[result.task_id] = result.result
        if len(results) == len(inputs):
            all_done.set()

    worker = CallableMessageConsumer(handler=count_words, message_type="word_counter")
    reader = CallableMessageConsumer(handler=human, message_type="human")
    consuming = [
        asyncio.create_task((await queue.register_consumer(consumer))())
        for consumer in (worker, reader)
    ]
    tasks = [TaskDefinition(input=text) for text in inputs]
    try:
        for task in tasks:
            await queue.publish(
                QueueMessage(
                    type="word_counter",
                    action=ActionTypes.NEW_TASK,
                    publisher_id="demo",
                    data=task.model_dump(mode="json"),
                )
            )
        async with asyncio.timeout(30):
            await all_done.wait()
    finally:
        await queue.cleanup()
        await queue.close()
        for task_ in consuming:
            task_.cancel()
    return [results[task.task_id] for task in tasks]
