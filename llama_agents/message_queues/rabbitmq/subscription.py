"""One consumer attached to its RabbitMQ queue: its channel, its deliveries, its drain.

A delivery is always settled with the broker: acknowledged once its retry or dead letter is
safely published, or, when that fails, handed back (rejected with requeue) so it never sits
unacknowledged on a live channel, where `prefetch` of them would stall the consumer for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from llama_agents.errors import BrokerUnavailableError, MessageQueueError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DeliveryPolicy,
    Outcome,
    Verdict,
    deliver,
    drain,
    notify_dead_letter,
    read_attempts,
)

if TYPE_CHECKING:
    from llama_agents.metrics.fabric import FabricMetrics

logger = logging.getLogger("llama_agents.rabbitmq")

#: Seconds a stopping consumer waits for the broker to confirm a cancel or a channel close.
_BROKER_CALL_TIMEOUT = 5.0

#: Seconds a subscription reports itself degraded after a settle failure (unless a later
#: retry or dead letter is published fine): the failure is taken to persist until then.
SETTLE_FAILURE_WINDOW = 60.0

#: First and largest pause before handing back a message whose settling failed, so a
#: settle that keeps failing (a classic queue counts no deliveries) does not spin.
_GIVE_BACK_DELAY = 0.05
_MAX_GIVE_BACK_DELAY = 2.0

#: Header RabbitMQ sets on quorum-queue redeliveries (a consumer died holding the message).
DELIVERY_COUNT_HEADER = "x-delivery-count"

#: Puts a message back on its queue: (subscription, message, new headers).
RetryFn = Callable[["Subscription", AbstractIncomingMessage, dict[str, Any]], Awaitable[None]]
#: Moves a message to the dead-letter queue: (subscription, message, reason, attempts).
DeadLetterFn = Callable[["Subscription", AbstractIncomingMessage, str, int], Awaitable[None]]
#: Told about every failed settle (the queue counts them).
SettleFailedFn = Callable[["Subscription", BaseException], None]


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
        start_timeout: float = 30.0,
        on_settle_failed: SettleFailedFn | None = None,
        metrics: FabricMetrics | None = None,
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
        self.start_timeout = start_timeout
        self._on_settle_failed = on_settle_failed
        self.metrics = metrics
        #: Why consuming ended other than by `stop()` (the broker refused a reconnect).
        self.error: MessageQueueError | None = None
        self._failing_since: float | None = None
        self._consecutive_failures = 0

    @property
    def consuming(self) -> bool:
        return self._consumer_tag is not None

    @property
    def degraded(self) -> bool:
        """True while a recent settle failure handed a message back (see SETTLE_FAILURE_WINDOW)."""
        since = self._failing_since
        if since is None:
            return False
        if time.monotonic() - since >= SETTLE_FAILURE_WINDOW:
            self._failing_since = None
            return False
        return True

    async def start(self) -> None:
        """Begin consuming (idempotent; a no-op once stopped).

        The channel may be down or still being restored after a reconnect: wait until it is
        ready, and try again if the connection drops meanwhile, for up to `start_timeout`
        seconds (then `BrokerUnavailableError`).
        """
        backoff = 0.01
        try:
            async with asyncio.timeout(self.start_timeout):
                while self._consumer_tag is None and not self.stopped.is_set():
                    if not await self._until_ready():
                        return  # stopped while waiting
                    try:
                        self._consumer_tag = await self.queue.consume(
                            self._on_message, no_ack=False
                        )
                    except CONNECTION_EXCEPTIONS as exc:
                        logger.info(
                            "cannot consume from %s yet (%s: %s); retrying",
                            self.queue.name,
                            type(exc).__name__,
                            exc,
                        )
                        await asyncio.sleep(backoff)  # backoff between attempts
                        backoff = min(backoff * 2, 1.0)
        except TimeoutError:
            raise BrokerUnavailableError(
                f"could not start consuming from {self.queue.name!r} within "
                f"{self.start_timeout}s: the channel to RabbitMQ did not come back"
            ) from None

    async def _until_ready(self) -> bool:
        """Wait for the channel to be open (restored); False if stopped first."""
        ready = asyncio.ensure_future(self.channel.ready())
        stopped = asyncio.ensure_future(self.stopped.wait())
        try:
            await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (ready, stopped):
                waiter.cancel()
        return not self.stopped.is_set()

    def abort(self, error: MessageQueueError) -> None:
        """End consuming for good because of `error` (the awaiting consumer sees it)."""
        self.error = error
        self._consumer_tag = None
        self.stopped.set()

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
            await notify_dead_letter(self.consumer, incoming.body, reason)
            await self._settle(incoming, Outcome(Verdict.DEAD_LETTER, redeliveries, reason))
            return
        redelivered = bool(incoming.redelivered) or redeliveries > 0
        if self.metrics is not None:
            self.metrics.delivered(self.consumer.message_type, redelivered)
        outcome = await deliver(
            self.consumer,
            incoming.body,
            attempts=read_attempts(headers),
            policy=self.policy,
            redelivered=redelivered,
            headers=headers,
            system="rabbitmq",
            destination=self.queue.name,
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
        except Exception as exc:
            await self._give_back(incoming, outcome, exc)
            return
        if self.metrics is not None:
            self.metrics.settled(self.consumer.message_type, outcome.verdict.value, outcome.reason)
        if outcome.verdict is not Verdict.ACK:
            # A retry or dead letter went through: the settle path works again.
            self._failing_since = None
            self._consecutive_failures = 0

    async def _give_back(
        self, incoming: AbstractIncomingMessage, outcome: Outcome, exc: BaseException
    ) -> None:
        """Hand a message whose settling failed back to the broker, and make it visible.

        `reject(requeue=True)` rather than `nack`: both put the message back, but on quorum
        queues RabbitMQ 4.3+ counts only a reject towards the delivery limit, and the count is
        what bounds a settle that keeps failing (3.x and 4.0-4.2 count both).
        """
        self._consecutive_failures += 1
        if self._on_settle_failed is not None:
            self._on_settle_failed(self, exc)
        if self.channel.is_closed:
            # The channel is gone: the broker already has the message back.
            logger.warning(
                "could not %s message %s (%s: %s); the broker redelivers it",
                outcome.verdict.value,
                incoming.message_id,
                type(exc).__name__,
                exc,
            )
            return
        logger.error(
            "could not %s message %s from %s (%s: %s); handing it back to the broker",
            outcome.verdict.value,
            incoming.message_id,
            self.queue.name,
            type(exc).__name__,
            exc,
        )
        delay = _GIVE_BACK_DELAY * 2 ** min(self._consecutive_failures - 1, 10)
        await asyncio.sleep(min(delay, _MAX_GIVE_BACK_DELAY))  # backoff, not a wait for an event
        try:
            async with asyncio.timeout(_BROKER_CALL_TIMEOUT):
                await incoming.reject(requeue=True)
        except Exception:
            logger.warning("could not hand back message %s", incoming.message_id, exc_info=True)
            return
        self._failing_since = time.monotonic()

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
