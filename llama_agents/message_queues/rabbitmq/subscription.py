"""One consumer attached to its RabbitMQ queue: its channel, its deliveries, its drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DeliveryPolicy,
    Outcome,
    Verdict,
    deliver,
    drain,
    read_attempts,
)

logger = logging.getLogger("llama_agents.rabbitmq")

#: Seconds a stopping consumer waits for the broker to confirm a cancel or a channel close.
_BROKER_CALL_TIMEOUT = 5.0

#: Header RabbitMQ sets on quorum-queue redeliveries (a consumer died holding the message).
DELIVERY_COUNT_HEADER = "x-delivery-count"

#: Puts a message back on its queue: (subscription, message, new headers).
RetryFn = Callable[["Subscription", AbstractIncomingMessage, dict[str, Any]], Awaitable[None]]
#: Moves a message to the dead-letter queue: (subscription, message, reason, attempts).
DeadLetterFn = Callable[["Subscription", AbstractIncomingMessage, str, int], Awaitable[None]]


class Subscription:
    """Delivers one queue's messages to one consumer, acking only after its handler returned.

    aio-pika runs each delivery in its own task, so up to `prefetch` messages are handled at
    once. `stop()` cancels the consumer at the broker, lets the deliveries already received
    finish (and be acknowledged), then closes the channel.
    """

    def __init__(
        self,
        consumer: BaseMessageQueueConsumer,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
        *,
        policy: DeliveryPolicy,
        max_redeliveries: int,
        retry: RetryFn,
        dead_letter: DeadLetterFn,
    ) -> None:
        self.consumer = consumer
        self.channel = channel
        self.queue = queue
        self.policy = policy
        self.max_redeliveries = max_redeliveries
        self._retry = retry
        self._dead_letter = dead_letter
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.stopped = asyncio.Event()

    @property
    def consuming(self) -> bool:
        return self._consumer_tag is not None

    async def start(self) -> None:
        """Begin consuming (idempotent; a no-op once stopped)."""
        if self._consumer_tag is None and not self.stopped.is_set():
            self._consumer_tag = await self.queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._handle(incoming)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, incoming: AbstractIncomingMessage) -> None:
        headers = dict(incoming.headers or {})
        redeliveries = _as_int(headers.get(DELIVERY_COUNT_HEADER))
        if redeliveries >= self.max_redeliveries:
            # The broker gave this message back this often: its consumers die holding it.
            reason = (
                f"redelivered {redeliveries} times without being acknowledged "
                "(its consumer may be crashing on it)"
            )
            await self._settle(incoming, Outcome(Verdict.DEAD_LETTER, redeliveries, reason))
            return
        outcome = await deliver(
            self.consumer, incoming.body, attempts=read_attempts(headers), policy=self.policy
        )
        await self._settle(incoming, outcome)

    async def _settle(self, incoming: AbstractIncomingMessage, outcome: Outcome) -> None:
        try:
            if outcome.verdict is Verdict.RETRY:
                headers = dict(incoming.headers or {})
                headers.pop(DELIVERY_COUNT_HEADER, None)
                headers[ATTEMPTS_HEADER] = outcome.attempts
                await self._retry(self, incoming, headers)
            elif outcome.verdict is Verdict.DEAD_LETTER:
                await self._dead_letter(self, incoming, outcome.reason or "", outcome.attempts)
            await incoming.ack()
        except Exception:
            # Not acknowledged: the broker redelivers it once the channel is back.
            logger.exception(
                "could not settle message %s; it will be redelivered", incoming.message_id
            )

    async def stop(self) -> None:
        """Stop taking messages; finish and acknowledge the ones already received."""
        if self._consumer_tag is not None and not self.channel.is_closed:
            # While the broker is unreachable there is nothing to cancel: the channel is
            # gone and nothing can be delivered. Never wait on a reconnect here.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_BROKER_CALL_TIMEOUT):
                    await self.queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        await drain(self._in_flight, self.policy.drain_timeout)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_BROKER_CALL_TIMEOUT):
                await self.channel.close()
        self.stopped.set()


def _as_int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
