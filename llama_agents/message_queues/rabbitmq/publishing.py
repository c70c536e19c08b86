"""One message's way to a publisher confirm, across reconnects and a cluster's failover.

A publish returns only once the broker confirmed it. What stands in the way and is not
final is waited out and the message published again (at least once: the broker may hold
the first copy too; results are idempotent by step id):
- the connection or channel drops (the node went away): wait until the robust channel is
  restored, on whichever node the connection reached, and publish again;
- the broker answers with a negative confirm (`basic.nack`): a quorum queue nacks what it
  cannot take while its leader's node is going, and a queue at its length limit
  (`x-overflow=reject-publish`) until consumers make room. Publish again, with backoff and
  on a new channel: RabbitMQ 3.10 keeps, per channel and queue, the leader it first looked
  up, so a channel that first published while a leader was being elected can be stuck with
  the dead one and nack every later publish. Only when the publish timeout ends the tries
  is it `PublishRejectedError`.
What is final raises at once: no queue bound for the routing key, refused credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.message import Message

from llama_agents.errors import (
    BrokerAuthenticationError,
    MessageQueueError,
    PublishRejectedError,
    PublishTimeoutError,
    UnroutableMessageError,
)

logger = logging.getLogger("llama_agents.rabbitmq")

#: Where to publish: the exchange and the channel it is on. Given a channel, first replaces
#: that channel by a new one (unless that was done already).
PublishTarget = Callable[
    [AbstractRobustChannel | None], Awaitable[tuple[AbstractExchange, AbstractRobustChannel]]
]

#: First and largest pause between two tries of one message.
_FIRST_BACKOFF = 0.01
_MAX_BACKOFF = 1.0


class ConfirmedPublish:
    """Publishes one message until the broker confirms it (the caller bounds the time)."""

    def __init__(self, message: Message, routing_key: str) -> None:
        self.message = message
        self.routing_key = routing_key
        #: Negative confirms received so far, and the last one.
        self.nacks = 0
        self.last_nack: aiormq.exceptions.DeliveryError | None = None

    async def until_confirmed(
        self,
        target: PublishTarget,
        refused: Callable[[], BrokerAuthenticationError | None],
    ) -> None:
        """Publish on the exchange `target` gives until confirmed; `refused()` names a
        refusal of the credentials that ends the tries."""
        backoff = _FIRST_BACKOFF
        renew: AbstractRobustChannel | None = None
        while True:
            exchange, channel = await target(renew)
            renew = None
            try:
                await exchange.publish(self.message, self.routing_key, mandatory=True)
                return
            except aiormq.exceptions.PublishError:
                raise UnroutableMessageError(self.routing_key, exchange.name or None) from None
            except aiormq.exceptions.DeliveryError as exc:
                self.nacks += 1
                self.last_nack = exc
                logger.info("the broker nacked a message to %r; retrying", self.routing_key)
                renew = channel
            except CONNECTION_EXCEPTIONS as exc:
                error = refused()
                if error is not None:
                    raise error from None
                # The channel is down or being restored (or was replaced): wait for the
                # current one, then publish again.
                logger.info("publish to %r interrupted (%s); retrying", self.routing_key, exc)
                _, current = await target(None)
                await current.ready()
            await asyncio.sleep(backoff)  # a backoff between tries, not a wait for an event
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def timed_out(self, broker: str, timeout: float) -> MessageQueueError:
        """The error for a publish the timeout ended: rejected if the broker kept nacking."""
        if self.last_nack is not None:
            return PublishRejectedError(
                f"the broker refused a message to {self.routing_key!r} ({self.nacks} negative "
                f"confirms within {timeout}s; is the queue full?): {self.last_nack}"
            )
        return PublishTimeoutError(
            f"the broker at {broker} did not confirm a message to {self.routing_key!r} "
            f"within {timeout}s"
        )
