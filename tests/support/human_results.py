"""The final results of a multi-process test's tasks, read off the `human` queue."""

from __future__ import annotations

import asyncio
from collections import Counter

from llama_agents import CallableMessageConsumer, QueueMessage, RabbitMQMessageQueue, TaskResult


class Results:
    """Reads the `human` queue in the test process: every final result, counted by task."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self.queue = RabbitMQMessageQueue(
            url=amqp_url, exchange_name=exchange, reconnect_interval=0.2, max_reconnect_interval=1
        )
        self.by_task: Counter[str] = Counter()
        self.answers: dict[str, TaskResult] = {}
        self.expected: set[str] = set()
        self.changed = asyncio.Condition()
        self._consuming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = CallableMessageConsumer(handler=self._receive, message_type="human")
        start = await self.queue.register_consumer(consumer)
        self._consuming = asyncio.create_task(start())

    async def _receive(self, message: QueueMessage) -> None:
        result = TaskResult.model_validate(message.data)
        async with self.changed:
            self.by_task[result.task_id] += 1
            self.answers[result.task_id] = result
            self.changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 180.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.by_task) >= count)

    async def close(self) -> None:
        await self.queue.close()
        if self._consuming is not None:
            self._consuming.cancel()
