"""`EmbeddedQueue`: the in-process queue behind `SimpleMessageQueue`, same rules as RabbitMQ.

Messages are stored encoded, exactly as they would cross a broker, so a consumer never
shares an object with its publisher and an undecodable body is dead-lettered the same way.
Delivery is driven by `asyncio.Queue` wake-ups: there is no polling interval.

This module knows nothing of HTTP: the HTTP face (server.py) depends on the small protocol
this class satisfies, and `SimpleMessageQueue` (served.py) puts the two together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from llama_agents.errors import (
    ConsumerNotFoundError,
    DeadLetterTimeoutError,
    UnroutableMessageError,
)
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DEAD_LETTER_TYPE,
    DeadLetter,
    DeliveryPolicy,
    Verdict,
    deliver,
    drain,
    read_attempts,
)
from llama_agents.message_queues.replay import (
    ReplayFailure,
    ReplayOutcome,
    replay_headers,
    selects,
)
from llama_agents.messages import QueueMessage, validate_routing_key
from llama_agents.messages.envelope import utc_now

logger = logging.getLogger("llama_agents.simple")


@dataclass
class _Envelope:
    body: bytes
    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)


class _TypeQueue:
    """One message type's queue: pending messages and the consumers competing for them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: asyncio.Queue[_Envelope] = asyncio.Queue()
        self.in_flight = 0
        #: Set while nothing waits here and nothing is being handled.
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, envelope: _Envelope) -> None:
        self.idle.clear()
        self.pending.put_nowait(envelope)

    def settled(self) -> None:
        if self.in_flight == 0 and self.pending.empty():
            self.idle.set()


class _Subscription:
    """A started consumer: `prefetch` workers taking messages from one type queue."""

    def __init__(
        self,
        consumer: BaseMessageQueueConsumer,
        type_queue: _TypeQueue,
        owner: EmbeddedQueue,
    ) -> None:
        self.consumer = consumer
        self.type_queue = type_queue
        self.owner = owner
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []

    def start(self, prefetch: int) -> None:
        self.workers = [
            asyncio.create_task(self._work(), name=f"simple-consumer-{self.consumer.id_}-{i}")
            for i in range(prefetch)
        ]

    async def _work(self) -> None:
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                getter = asyncio.ensure_future(self.type_queue.pending.get())
                await asyncio.wait({getter, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                if getter.cancelled():
                    return
                await self._handle(getter.result())
        finally:
            stop_wait.cancel()

    async def _handle(self, envelope: _Envelope) -> None:
        self.type_queue.in_flight += 1
        try:
            attempts = read_attempts(envelope.headers)
            try:
                outcome = await deliver(
                    self.consumer, envelope.body, attempts=attempts, policy=self.owner.policy
                )
            except asyncio.CancelledError:
                # Stopped mid-message (drain timed out): hand it back, unacknowledged.
                self.type_queue.put(envelope)
                raise
            if outcome.verdict is Verdict.RETRY:
                headers = {**envelope.headers, ATTEMPTS_HEADER: outcome.attempts}
                self.type_queue.put(_Envelope(envelope.body, envelope.routing_key, headers))
            elif outcome.verdict is Verdict.DEAD_LETTER:
                await self.owner._dead_letter(
                    envelope, self.type_queue.name, outcome.reason or "", outcome.attempts
                )
        finally:
            self.type_queue.in_flight -= 1
            self.type_queue.settled()

    async def stop(self) -> None:
        """Stop taking messages; wait for the ones being handled to finish."""
        self.stopping.set()
        await drain(set(self.workers), self.owner.policy.drain_timeout)
        self.stopped.set()


class EmbeddedQueue(BaseMessageQueue):
    """The embedded message queue: runs in this process, needs no broker.

    It has no network face of its own: `SimpleMessageQueue` adds the HTTP server and the
    client for other processes. What it holds lives as long as the process (`durable` is
    False): a control plane re-sends its open steps after a restart.
    """

    durable = False

    def __init__(
        self, *, prefetch: int = 10, max_attempts: int = 3, drain_timeout: float = 30.0
    ) -> None:
        self.policy = DeliveryPolicy(
            prefetch=prefetch, max_attempts=max_attempts, drain_timeout=drain_timeout
        )
        self._queues: dict[str, _TypeQueue] = {}
        #: routing key -> the queues bound to it (a queue is bound to its own name, and a
        #: transient consumer's queue to its extra binding keys too)
        self._bindings: dict[str, set[str]] = {}
        self._consumers: dict[str, BaseMessageQueueConsumer] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._dead_letters: deque[DeadLetter] = deque()
        self._dead_letters_changed = asyncio.Condition()
        self._closed = asyncio.Event()

    # -- publishing -------------------------------------------------------------------

    async def _publish(self, message: QueueMessage, **kwargs: Any) -> None:
        await self.publish_raw(message.encode(), message.type)

    async def publish_raw(
        self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None
    ) -> None:
        names = self._bindings.get(routing_key)
        if not names:
            raise UnroutableMessageError(routing_key)
        for name in names:
            self._queues[name].put(_Envelope(bytes(body), routing_key, dict(headers or {})))

    # -- consumers --------------------------------------------------------------------

    async def declare_queue(self, message_type: str) -> None:
        self._type_queue(message_type)

    def _type_queue(self, message_type: str) -> _TypeQueue:
        name = validate_routing_key(message_type)
        if name not in self._queues:
            self._queues[name] = _TypeQueue(name)
            self._bindings.setdefault(name, set()).add(name)
        return self._queues[name]

    async def queue_exists(self, message_type: str) -> bool:
        return bool(self._bindings.get(message_type))

    async def consumer_count(self, message_type: str) -> int | None:
        return sum(
            1
            for subscription in self._subscriptions.values()
            if subscription.type_queue.name == message_type and not subscription.stopping.is_set()
        )

    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable:
        type_queue = self._type_queue(consumer.message_type)
        if consumer.id_ in self._consumers:
            # Registering the same consumer again is harmless; hand back the same callable.
            return self._start_consuming_callable(consumer, type_queue)
        self._consumers[consumer.id_] = consumer
        for key in consumer.binding_keys[1:]:
            self._bindings.setdefault(key, set()).add(type_queue.name)
        return self._start_consuming_callable(consumer, type_queue)

    def _start_consuming_callable(
        self, consumer: BaseMessageQueueConsumer, type_queue: _TypeQueue
    ) -> StartConsumingCallable:
        async def start_consuming() -> None:
            subscription = self._subscriptions.get(consumer.id_)
            if subscription is None:
                if consumer.id_ not in self._consumers:
                    raise ConsumerNotFoundError(f"consumer {consumer.id_} was deregistered")
                subscription = _Subscription(consumer, type_queue, self)
                self._subscriptions[consumer.id_] = subscription
                subscription.start(self.policy.prefetch_for(consumer))
            await subscription.stopped.wait()

        return start_consuming

    async def deregister_consumer(self, consumer: BaseMessageQueueConsumer) -> None:
        if self._consumers.pop(consumer.id_, None) is None:
            raise ConsumerNotFoundError(f"consumer {consumer.id_} is not registered")
        subscription = self._subscriptions.pop(consumer.id_, None)
        if subscription is not None:
            await subscription.stop()
        if consumer.transient and not any(
            c.message_type == consumer.message_type for c in self._consumers.values()
        ):
            self._queues.pop(consumer.message_type, None)
            for key in consumer.binding_keys:
                bound = self._bindings.get(key)
                if bound is not None:
                    bound.discard(consumer.message_type)
                    if not bound:
                        del self._bindings[key]

    async def wait_idle(self, message_type: str, timeout: float) -> bool:
        """Wait until nothing of `message_type` waits or is being handled; False on timeout.

        What this queue holds dies with the process: a launcher stopping everything lets the
        control plane take the last results and updates first.
        """
        type_queue = self._queues.get(message_type)
        if type_queue is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await type_queue.idle.wait()
        except TimeoutError:
            return False
        return True

    def consumers(self) -> list[BaseMessageQueueConsumer]:
        """The registered consumers, in registration order."""
        return list(self._consumers.values())

    def stats(self) -> dict[str, dict[str, int]]:
        """Per message type: messages waiting, being handled, and consumers."""
        consumers_by_type: dict[str, int] = {}
        for consumer in self._consumers.values():
            consumers_by_type[consumer.message_type] = (
                consumers_by_type.get(consumer.message_type, 0) + 1
            )
        return {
            name: {
                "pending": queue.pending.qsize(),
                "in_flight": queue.in_flight,
                "consumers": consumers_by_type.get(name, 0),
            }
            for name, queue in self._queues.items()
        }

    # -- dead letters -----------------------------------------------------------------

    async def _dead_letter(
        self, envelope: _Envelope, queue: str, reason: str, attempts: int
    ) -> None:
        letter = DeadLetter(
            routing_key=envelope.routing_key,
            queue=queue,
            reason=reason,
            attempts=attempts,
            body=envelope.body.decode(errors="replace"),
            headers={k: v for k, v in envelope.headers.items() if k != ATTEMPTS_HEADER},
            dead_lettered_at=utc_now(),
        )
        async with self._dead_letters_changed:
            self._dead_letters.append(letter)
            self._dead_letters_changed.notify_all()

    async def fetch_dead_letters(
        self,
        limit: int | None = None,
        *,
        remove: bool = True,
        wait_for: int = 0,
        timeout: float = 10.0,
    ) -> list[DeadLetter]:
        if wait_for > 0:
            try:
                async with asyncio.timeout(timeout), self._dead_letters_changed:
                    await self._dead_letters_changed.wait_for(
                        lambda: len(self._dead_letters) >= wait_for
                    )
            except TimeoutError:
                raise DeadLetterTimeoutError(
                    f"fewer than {wait_for} dead letters after {timeout}s"
                ) from None
        count = len(self._dead_letters) if limit is None else min(limit, len(self._dead_letters))
        letters = [self._dead_letters[i] for i in range(count)]
        if remove:
            for _ in range(count):
                self._dead_letters.popleft()
        return letters

    async def dead_letter_count(self) -> int | None:
        return len(self._dead_letters)

    async def replay_dead_letters(
        self, ids: Collection[str] | None = None, *, reason: str | None = None
    ) -> ReplayOutcome:
        outcome = ReplayOutcome()
        for letter in [d for d in self._dead_letters if selects(d, ids, reason)]:
            try:
                await self.publish_raw(
                    letter.body.encode(), letter.routing_key, replay_headers(letter.headers)
                )
            except UnroutableMessageError as exc:
                outcome.failed.append(
                    ReplayFailure(id=letter.id, routing_key=letter.routing_key, error=str(exc))
                )
                continue
            self._dead_letters.remove(letter)
            outcome.replayed.append(letter)
        return outcome

    async def purge_dead_letters(self) -> int:
        count = len(self._dead_letters)
        self._dead_letters.clear()
        return count

    @property
    def dead_letter_type(self) -> str:
        """The name dead letters are kept under (there is no consumer type for them here)."""
        return DEAD_LETTER_TYPE

    # -- lifecycle --------------------------------------------------------------------

    async def launch_local(self) -> asyncio.Task[None]:
        self._closed.clear()
        return asyncio.create_task(self._wait_closed(), name="simple-message-queue")

    async def _wait_closed(self) -> None:
        await self._closed.wait()

    async def launch_server(self) -> None:
        """Run in this process until closed (the core has no network face to serve)."""
        await (await self.launch_local())

    async def cleanup(self) -> None:
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        self._queues.clear()
        self._bindings.clear()
        self._dead_letters.clear()

    async def close(self) -> None:
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        self._closed.set()
