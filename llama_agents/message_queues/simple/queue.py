"""`SimpleMessageQueue`: the embedded, in-process queue, with the same rules as RabbitMQ.

Messages are stored encoded, exactly as they would cross a broker, so a consumer never
shares an object with its publisher and an undecodable body is dead-lettered the same way.
Delivery is driven by `asyncio.Queue` wake-ups: there is no polling interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llama_agents._settings import env_int, env_str
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
from llama_agents.messages import QueueMessage, validate_routing_key
from llama_agents.messages.envelope import utc_now

if TYPE_CHECKING:
    from llama_agents.message_queues.simple.client import SimpleRemoteClientMessageQueue
    from llama_agents.message_queues.simple.server import SimpleMessageQueueServer

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


class _Subscription:
    """A started consumer: `prefetch` workers taking messages from one type queue."""

    def __init__(
        self,
        consumer: BaseMessageQueueConsumer,
        type_queue: _TypeQueue,
        owner: SimpleMessageQueue,
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
                self.type_queue.pending.put_nowait(envelope)
                raise
            if outcome.verdict is Verdict.RETRY:
                headers = {**envelope.headers, ATTEMPTS_HEADER: outcome.attempts}
                self.type_queue.pending.put_nowait(
                    _Envelope(envelope.body, envelope.routing_key, headers)
                )
            elif outcome.verdict is Verdict.DEAD_LETTER:
                await self.owner._dead_letter(
                    envelope, self.type_queue.name, outcome.reason or "", outcome.attempts
                )
        finally:
            self.type_queue.in_flight -= 1

    async def stop(self) -> None:
        """Stop taking messages; wait for the ones being handled to finish."""
        self.stopping.set()
        await drain(set(self.workers), self.owner.policy.drain_timeout)
        self.stopped.set()


class SimpleMessageQueue(BaseMessageQueue):
    """The embedded message queue: runs in this process, needs no broker.

    `launch_server()` also serves it over HTTP on `host:port`, and `.client` gives a queue
    object for other processes that talks to that server.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        prefetch: int = 10,
        max_attempts: int = 3,
        drain_timeout: float = 30.0,
    ) -> None:
        self.host = host or env_str("SIMPLE_QUEUE_HOST", "127.0.0.1")
        self.port = port if port is not None else env_int("SIMPLE_QUEUE_PORT", 8000)
        self.policy = DeliveryPolicy(
            prefetch=prefetch, max_attempts=max_attempts, drain_timeout=drain_timeout
        )
        self._queues: dict[str, _TypeQueue] = {}
        self._consumers: dict[str, BaseMessageQueueConsumer] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._dead_letters: deque[DeadLetter] = deque()
        self._dead_letters_changed = asyncio.Condition()
        self._closed = asyncio.Event()
        self._serving = asyncio.Event()
        self._server: SimpleMessageQueueServer | None = None

    # -- publishing -------------------------------------------------------------------

    async def _publish(self, message: QueueMessage, **kwargs: Any) -> None:
        await self.publish_raw(message.encode(), message.type)

    async def publish_raw(
        self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None
    ) -> None:
        type_queue = self._queues.get(routing_key)
        if type_queue is None:
            raise UnroutableMessageError(routing_key)
        type_queue.pending.put_nowait(_Envelope(bytes(body), routing_key, dict(headers or {})))

    # -- consumers --------------------------------------------------------------------

    async def declare_queue(self, message_type: str) -> None:
        self._type_queue(message_type)

    def _type_queue(self, message_type: str) -> _TypeQueue:
        name = validate_routing_key(message_type)
        if name not in self._queues:
            self._queues[name] = _TypeQueue(name)
        return self._queues[name]

    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable:
        type_queue = self._type_queue(consumer.message_type)
        if consumer.id_ in self._consumers:
            # Registering the same consumer again is harmless; hand back the same callable.
            return self._start_consuming_callable(consumer, type_queue)
        self._consumers[consumer.id_] = consumer
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
        from llama_agents.message_queues.simple.server import SimpleMessageQueueServer

        self._server = SimpleMessageQueueServer(self, host=self.host, port=self.port)
        try:
            await self._server.serve(on_started=self._on_serving)
        finally:
            self._server = None
            self._serving.clear()

    def _on_serving(self, port: int) -> None:
        self.port = port
        self._serving.set()

    def stop_server(self) -> None:
        """Ask `launch_server` to return."""
        if self._server is not None:
            self._server.stop()

    async def wait_until_serving(self, timeout: float = 10.0) -> str:
        """Wait until `launch_server()` accepts connections; return its base URL."""
        async with asyncio.timeout(timeout):
            await self._serving.wait()
        return self.base_url

    @property
    def base_url(self) -> str:
        """Where `launch_server()` serves this queue."""
        return f"http://{self.host}:{self.port}"

    @property
    def client(self) -> SimpleRemoteClientMessageQueue:
        """A queue object that talks to this queue's HTTP server (for other processes)."""
        from llama_agents.message_queues.simple.client import SimpleRemoteClientMessageQueue

        return SimpleRemoteClientMessageQueue(base_url=self.base_url)

    async def cleanup(self) -> None:
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        self._queues.clear()
        self._dead_letters.clear()

    async def close(self) -> None:
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        if self._server is not None:
            self._server.stop()
        self._closed.set()
