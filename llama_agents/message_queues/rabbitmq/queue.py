"""`RabbitMQMessageQueue`: the message fabric on a RabbitMQ topic exchange.

The delivery contract (docs/architecture.md#the-delivery-contract) lives here: durable
topic exchange and queues, persistent messages, publisher confirms, mandatory publishing,
ack after the handler, bounded retries, a dead-letter queue with reasons, and a robust
connection that brings consumers back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelPreconditionFailed

from llama_agents import tracing
from llama_agents._settings import (
    DEFAULT_AMQP_URL,
    DEFAULT_EXCHANGE,
    env_optional_int,
    env_str,
)
from llama_agents.errors import (
    BrokerAuthenticationError,
    BrokerUnavailableError,
    ConfigurationError,
    ConsumerNotFoundError,
)
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    DEAD_LETTER_TYPE,
    ORIGIN_HEADER,
    ORIGIN_QUEUE_HEADER,
    REASON_HEADER,
    DeadLetter,
    DeliveryPolicy,
)
from llama_agents.message_queues.rabbitmq import dead_letter_admin, dead_letters, ownership
from llama_agents.message_queues.rabbitmq.addresses import parse_addresses, redact, redact_url
from llama_agents.message_queues.rabbitmq.connection import BackoffRobustConnection, connect
from llama_agents.message_queues.rabbitmq.publishing import ConfirmedPublish
from llama_agents.message_queues.rabbitmq.subscription import Subscription
from llama_agents.message_queues.rabbitmq.topology import (
    QueueType,
    dead_letter_queue_arguments,
    dead_letter_queue_name,
    queue_arguments,
    queue_name,
)
from llama_agents.message_queues.replay import ReplayOutcome
from llama_agents.messages import QueueMessage, validate_routing_key
from llama_agents.messages.envelope import SCHEMA_VERSION, utc_now

logger = logging.getLogger("llama_agents.rabbitmq")

_MAX_REASON = 1000


class RabbitMQMessageQueue(BaseMessageQueue):
    """A message queue on RabbitMQ.

    Args:
        url: the AMQP URL; default `LLAMA_AGENTS_AMQP_URL`, else the local broker. The nodes
            of a cluster are given comma-separated, as full URLs or as one URL with several
            hosts (`amqp://user:pass@node1:5672,node2:5672,node3:5672/`): the queue connects
            to one of them (a random one first, so processes spread) and, when it goes,
            reconnects to the next, restoring its consumers. `connected_url` says which.
        exchange_name: the topic exchange of this system; default `LLAMA_AGENTS_EXCHANGE`,
            else `llama_agents`. Two systems can share a broker under two names.
        queue_type: `quorum` (default) or `classic`, for every queue this object declares.
        prefetch: messages one consumer handles at once, unless the consumer sets its own.
        max_attempts: tries of a failing handler before the message is dead-lettered.
        drain_timeout: seconds a stopping consumer waits for the messages it is handling;
            the ones still running are then cancelled and handed back to the broker.
        max_redeliveries: quorum queues only: times the broker may give a message back
            (its consumer died holding it) before it is dead-lettered as a crash loop. The
            queue's `x-delivery-limit` is set a little above it, as the broker's backstop.
        publish_timeout: seconds a publish may wait for the broker's confirm (including
            while reconnecting, and publishing again after a negative confirm) before
            `PublishTimeoutError` (`PublishRejectedError` if the broker kept refusing it).
        connect_timeout: seconds each node may take to accept the first connection.
        reconnect_interval / max_reconnect_interval: the reconnect backoff's first and
            largest delay, in seconds (applied once every node was tried in vain).
        quorum_group_size: replicas of each new quorum queue (RabbitMQ's
            `x-quorum-initial-group-size`); default `LLAMA_AGENTS_QUORUM_GROUP_SIZE`, else the
            broker's default (a replica on each node, up to three). Every process of a
            system must use the same value: the broker refuses a declaration that differs.
    """

    messaging_system = "rabbitmq"

    def __init__(
        self,
        url: str | None = None,
        exchange_name: str | None = None,
        *,
        queue_type: QueueType | str = QueueType.QUORUM,
        prefetch: int = 10,
        max_attempts: int = 3,
        drain_timeout: float = 30.0,
        max_redeliveries: int = 20,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 0.5,
        max_reconnect_interval: float = 30.0,
        connection_name: str | None = None,
        quorum_group_size: int | None = None,
    ) -> None:
        self.url = url or env_str("AMQP_URL", DEFAULT_AMQP_URL)
        #: Every broker address `url` names (with credentials: never log these, see `redact`).
        self.addresses = parse_addresses(self.url)
        if quorum_group_size is None:
            quorum_group_size = env_optional_int("QUORUM_GROUP_SIZE")
        if quorum_group_size is not None and quorum_group_size < 1:
            raise ConfigurationError(
                f"quorum_group_size must be at least 1, got {quorum_group_size}"
            )
        self.quorum_group_size = quorum_group_size
        exchange = exchange_name or env_str("EXCHANGE", DEFAULT_EXCHANGE)
        try:
            self.exchange_name = validate_routing_key(exchange)
            self.queue_type = QueueType(queue_type)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        for name, value in (
            ("publish_timeout", publish_timeout),
            ("connect_timeout", connect_timeout),
            ("reconnect_interval", reconnect_interval),
            ("max_reconnect_interval", max_reconnect_interval),
        ):
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        if max_redeliveries < 1:
            raise ConfigurationError(f"max_redeliveries must be at least 1, got {max_redeliveries}")
        self.policy = DeliveryPolicy(
            prefetch=prefetch, max_attempts=max_attempts, drain_timeout=drain_timeout
        )
        self.max_redeliveries = max_redeliveries
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.max_reconnect_interval = max_reconnect_interval
        self.connection_name = connection_name

        self._connection: BackoffRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connect_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._consumers: dict[str, BaseMessageQueueConsumer] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._declared_queues: set[str] = set()
        self._created_queues: set[str] = set()
        self._declared_exchange = False
        self._refused: BrokerAuthenticationError | None = None
        #: Messages whose retry, dead letter or ack failed (each was handed back).
        self.settle_failures = 0

    def __repr__(self) -> str:
        return (
            f"<RabbitMQMessageQueue {redact(self.url)} exchange={self.exchange_name!r} "
            f"queue_type={self.queue_type.value}>"
        )

    # -- connection -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while the connection to the broker is up."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    @property
    def is_healthy(self) -> bool:
        """Connected, and no consumer is handing back messages it could not settle."""
        return self.is_connected and not any(s.degraded for s in self._subscriptions.values())

    @property
    def connected_url(self) -> str | None:
        """The address of the broker node in use (password hidden), None while down."""
        connection = self._connection
        if connection is None or connection.is_closed or connection.connected_url is None:
            return None
        return redact_url(connection.connected_url)

    def _broker(self) -> str:
        """The node in use, else every address, for error messages (passwords hidden)."""
        return self.connected_url or redact(self.url)

    def health(self) -> dict[str, Any]:
        report = super().health()
        report["settle_failures"] = self.settle_failures
        report["broker_url"] = self.connected_url
        return report

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every durable queue this object declared (created by it or already there)."""
        return frozenset(self._declared_queues)

    def _connection_closed(self) -> bool:
        connection = self._connection
        return connection is not None and connection.is_closed

    async def connect(self) -> None:
        """Connect and declare the exchange (done lazily by every operation that needs it)."""
        await self._ensure_connected()

    async def _ensure_connected(self) -> AbstractExchange:
        if self._exchange is not None and not self._connection_closed():
            return self._exchange
        async with self._connect_lock:
            if self._connection_closed():
                # Closed for good (not just reconnecting): start over with a new connection.
                await self._drop_connection()
            if self._exchange is None:
                self._closed.clear()
                connection = await connect(
                    self.addresses,
                    connect_timeout=self.connect_timeout,
                    reconnect_interval=self.reconnect_interval,
                    max_reconnect_interval=self.max_reconnect_interval,
                    connection_name=self.connection_name,
                )
                connection.on_refused = self._on_refused
                self._refused = None
                self._connection = connection
                await self._open_publish_channel()
                self._declared_exchange = True
        assert self._exchange is not None
        return self._exchange

    def _on_refused(self, error: BrokerAuthenticationError) -> None:
        """A reconnect was refused: the consumers end with the error instead of waiting."""
        self._refused = error
        for subscription in self._subscriptions.values():
            subscription.abort(error)

    # -- publishing -------------------------------------------------------------------

    async def _publish(self, message: QueueMessage, **kwargs: Any) -> None:
        amqp_message = aio_pika.Message(
            body=message.encode(),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.id_,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            type=message.action.value if message.action else None,
            app_id=message.publisher_id,
            timestamp=message.stats.publish_time,
            headers={"x-llama-schema": SCHEMA_VERSION, **tracing.amqp_headers(message)},
        )
        await self._publish_amqp(amqp_message, message.type)

    async def publish_raw(
        self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None
    ) -> None:
        amqp_message = aio_pika.Message(
            body=bytes(body),
            headers=dict(headers or {}),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publish_amqp(amqp_message, routing_key)

    async def _publish_amqp(
        self, message: aio_pika.Message, routing_key: str, *, to_queue: bool = False
    ) -> None:
        """Publish and wait for the broker's confirm, across a reconnect or a negative
        confirm, within the timeout (see `publishing`).

        `to_queue` sends straight to the queue named `routing_key` (the default exchange),
        which retries and dead letters use so that observers never see them twice.
        """
        publish = ConfirmedPublish(message, routing_key)

        async def target(
            renew: AbstractRobustChannel | None,
        ) -> tuple[AbstractExchange, AbstractRobustChannel]:
            exchange = await self._ensure_connected()
            if renew is not None:
                exchange = await self._renew_publish_channel(renew)
            channel = self._publish_channel
            assert channel is not None
            return (channel.default_exchange if to_queue else exchange), channel

        try:
            async with asyncio.timeout(self.publish_timeout):
                await self.metrics.timed_publish(
                    publish.until_confirmed(target, lambda: self._refused)
                )
        except TimeoutError:
            raise publish.timed_out(self._broker(), self.publish_timeout) from None

    async def _open_publish_channel(self) -> None:
        """Publish on a new channel, with publisher confirms, and the exchange declared on it."""
        assert self._connection is not None
        channel = self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            await channel.initialize(timeout=self.connect_timeout)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise
        self._publish_channel, self._exchange = channel, exchange

    async def _renew_publish_channel(self, stale: AbstractRobustChannel) -> AbstractExchange:
        """Publish on a new channel from now on, if `stale` is still the one in use (and a
        new one can be opened; else the robust connection restores the old one)."""
        async with self._connect_lock:
            if self._publish_channel is stale and not self._connection_closed():
                try:
                    await self._open_publish_channel()
                except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
                    logger.info("cannot open a new publish channel yet (%s)", exc)
                else:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self.connect_timeout):
                            await stale.close()
        assert self._exchange is not None
        return self._exchange

    # -- topology ---------------------------------------------------------------------

    async def _declare_bound_queue(
        self,
        channel: AbstractRobustChannel,
        message_type: str,
        *,
        transient: bool = False,
        binding_keys: tuple[str, ...] = (),
    ) -> AbstractQueue:
        name = queue_name(self.exchange_name, message_type)
        if transient:
            # Lives with this connection only: nothing to clean up if the process dies.
            queue = await channel.declare_queue(
                name, durable=False, exclusive=True, auto_delete=True
            )
            for key in binding_keys or (message_type,):
                await queue.bind(self.exchange_name, routing_key=key)
            return queue
        arguments = queue_arguments(
            self.queue_type, self.exchange_name, self.max_redeliveries, self.quorum_group_size
        )
        durable = await self._declare_durable(channel, name, arguments)
        await durable.bind(self.exchange_name, routing_key=message_type)
        return durable

    async def _declare_durable(
        self, channel: AbstractRobustChannel, name: str, arguments: dict[str, Any] | None
    ) -> AbstractQueue:
        """Declare a durable queue, remembering whether this object created it."""
        created = False
        if name not in self._declared_queues:
            assert self._connection is not None
            created = not await ownership.queue_exists(self._connection, name)
        try:
            queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue {name!r} already exists with other settings than this queue object "
                f"declares (queue_type={self.queue_type.value!r}, arguments {arguments}); the "
                f"broker said: {exc}. Give every part of the system the same queue_type, "
                "max_redeliveries and quorum_group_size, or delete the queue so it is declared "
                "anew (move its messages first: deleting a queue deletes them)."
            ) from None
        self._declared_queues.add(name)
        if created:
            self._created_queues.add(name)
        return queue

    async def _open_channel(self, prefetch: int | None = None) -> AbstractRobustChannel:
        """A new channel, once the connection is up (`BrokerUnavailableError` if it stays down)."""
        await self._ensure_connected()
        assert self._connection is not None
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._connection.ready()
                channel: AbstractRobustChannel = self._connection.channel()
                await channel.initialize()
                if prefetch is not None:
                    await channel.set_qos(prefetch_count=prefetch)
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            raise BrokerUnavailableError(
                f"cannot open a channel to RabbitMQ at {self._broker()} within "
                f"{self.connect_timeout}s: {type(exc).__name__}: {exc}"
            ) from exc
        return channel

    async def declare_queue(self, message_type: str) -> None:
        validate_routing_key(message_type)
        channel = await self._open_channel()
        try:
            await self._declare_bound_queue(channel, message_type)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def queue_exists(self, message_type: str) -> bool:
        await self._ensure_connected()
        assert self._connection is not None
        return await ownership.queue_exists(
            self._connection, queue_name(self.exchange_name, message_type)
        )

    async def consumer_count(self, message_type: str) -> int | None:
        await self._ensure_connected()
        assert self._connection is not None
        return await ownership.consumer_count(
            self._connection, queue_name(self.exchange_name, message_type)
        )

    async def _declare_dead_letter_queue(self, channel: AbstractRobustChannel) -> AbstractQueue:
        name = dead_letter_queue_name(self.exchange_name)
        return await self._declare_durable(
            channel, name, dead_letter_queue_arguments(self.queue_type, self.quorum_group_size)
        )

    # -- consumers --------------------------------------------------------------------

    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable:
        if consumer.message_type == DEAD_LETTER_TYPE:
            raise ConfigurationError(
                "the dead-letter queue is not consumed like a message type; "
                "read it with fetch_dead_letters()"
            )
        subscription = self._subscriptions.get(consumer.id_)
        if subscription is None:
            channel = await self._open_channel(prefetch=self.policy.prefetch_for(consumer))
            try:
                queue = await self._declare_bound_queue(
                    channel,
                    consumer.message_type,
                    transient=consumer.transient,
                    binding_keys=consumer.binding_keys,
                )
                await self._declare_dead_letter_queue(channel)
            except BaseException:
                with contextlib.suppress(Exception):
                    await channel.close()
                raise
            subscription = Subscription(
                consumer,
                channel,
                queue,
                policy=self.policy,
                max_redeliveries=self.max_redeliveries,
                retry=self._requeue,
                dead_letter=self._dead_letter,
                start_timeout=self.connect_timeout + self.max_reconnect_interval,
                on_settle_failed=self._count_settle_failure,
                metrics=self.metrics,
            )
            self._subscriptions[consumer.id_] = subscription
            self._consumers[consumer.id_] = consumer

        async def start_consuming() -> None:
            if consumer.id_ not in self._subscriptions:
                raise ConsumerNotFoundError(f"consumer {consumer.id_} was deregistered")
            try:
                await subscription.start()
            except Exception:
                if subscription.stopped.is_set() and subscription.error is None:
                    return  # deregistered before consuming began: nothing to do
                raise
            await subscription.stopped.wait()
            if subscription.error is not None:
                raise subscription.error

        return start_consuming

    async def deregister_consumer(self, consumer: BaseMessageQueueConsumer) -> None:
        subscription = self._subscriptions.pop(consumer.id_, None)
        self._consumers.pop(consumer.id_, None)
        if subscription is None:
            raise ConsumerNotFoundError(f"consumer {consumer.id_} is not registered")
        await subscription.stop()

    def consumers(self) -> list[BaseMessageQueueConsumer]:
        """The consumers registered on this queue object."""
        return list(self._consumers.values())

    def _count_settle_failure(self, subscription: Subscription, exc: BaseException) -> None:
        self.settle_failures += 1

    async def _requeue(
        self, subscription: Subscription, incoming: AbstractIncomingMessage, headers: dict[str, Any]
    ) -> None:
        """Put a failed message back at the tail of the queue it came from."""
        await self._publish_amqp(
            dead_letters.persistent_copy(incoming, headers), subscription.queue.name, to_queue=True
        )

    async def _dead_letter(
        self,
        subscription: Subscription,
        incoming: AbstractIncomingMessage,
        reason: str,
        attempts: int,
    ) -> None:
        """Move a message to `<exchange>.dead_letter`, saying why and after how many tries."""
        headers = dict(incoming.headers or {})
        headers.update(
            {
                REASON_HEADER: reason[:_MAX_REASON],
                ATTEMPTS_HEADER: attempts,
                ORIGIN_HEADER: subscription.consumer.message_type,
                ORIGIN_QUEUE_HEADER: subscription.queue.name,
                DEAD_AT_HEADER: utc_now().isoformat(),
            }
        )
        await self._publish_amqp(
            dead_letters.persistent_copy(incoming, headers),
            dead_letter_queue_name(self.exchange_name),
            to_queue=True,
        )

    async def fetch_dead_letters(
        self,
        limit: int | None = None,
        *,
        remove: bool = True,
        wait_for: int = 0,
        timeout: float = 10.0,
    ) -> list[DeadLetter]:
        # Peeking hands each message back (nack with requeue). On a quorum queue that counts
        # a delivery, so the dead-letter queue is declared with a delivery limit no peeking
        # reaches (see topology.DEAD_LETTER_DELIVERY_LIMIT): a peek never loses a message.
        channel = await self._open_channel()
        try:
            queue = await self._declare_dead_letter_queue(channel)
            held = await dead_letters.take(queue, limit=limit, wait_for=wait_for, timeout=timeout)
            keep = held if limit is None else held[:limit]
            for incoming in held:
                if remove and incoming in keep:
                    await incoming.ack()
                else:
                    await incoming.nack(requeue=True)
            return [dead_letters.record(incoming, queue.name) for incoming in keep]
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def dead_letter_count(self) -> int | None:
        """Dead letters ready in the queue (one being read by a tool right now is not)."""
        await self.connect()
        assert self._connection is not None
        name = dead_letter_queue_name(self.exchange_name)
        return await ownership.message_count(self._connection, name)

    async def replay_dead_letters(
        self, ids: Collection[str] | None = None, *, reason: str | None = None
    ) -> ReplayOutcome:
        # Taken unacknowledged on a channel of their own: a crash midway requeues them all.
        channel = await self._open_channel()
        try:
            dlq = await self._declare_dead_letter_queue(channel)
            return await dead_letter_admin.replay(dlq, self._publish_amqp, ids, reason)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def purge_dead_letters(self) -> int:
        channel = await self._open_channel()
        try:
            dlq = await self._declare_dead_letter_queue(channel)
            purged = await dlq.purge()
            return int(purged.message_count or 0)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    # -- lifecycle --------------------------------------------------------------------

    async def launch_local(self) -> asyncio.Task[None]:
        await self._ensure_connected()
        return asyncio.create_task(self._wait_closed(), name="rabbitmq-message-queue")

    async def _wait_closed(self) -> None:
        await self._closed.wait()

    async def launch_server(self) -> None:
        # The broker is the server: connect, then stay up until closed.
        await self._ensure_connected()
        await self._closed.wait()

    async def cleanup(self) -> None:
        """Remove what this object created, if nobody else uses it.

        A queue is deleted only if this object created it (it did not exist when first
        declared here), it is empty and nobody consumes from it; the exchange only if no
        queue is bound to it. A live system on the same exchange keeps its queues, its
        messages and its exchange.
        """
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        if not self._created_queues and not self._declared_exchange:
            return
        await self._ensure_connected()
        assert self._connection is not None
        for name in sorted(self._created_queues):
            await ownership.delete_queue_if_idle(
                self._connection, name, atomic=self.queue_type is QueueType.CLASSIC
            )
        if self._declared_exchange:
            await ownership.delete_exchange_if_unused(self._connection, self.exchange_name)
        self._created_queues.clear()
        self._declared_queues.clear()
        self._declared_exchange = False
        # The exchange may be gone: declare it again on next use.
        await self._drop_connection()

    async def close(self) -> None:
        for consumer in list(self._consumers.values()):
            await self.deregister_consumer(consumer)
        await self._drop_connection()
        self._closed.set()

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._exchange = None
        self._publish_channel = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
