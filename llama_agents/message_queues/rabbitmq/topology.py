"""Names and arguments of what llama-agents declares on RabbitMQ.

See docs/architecture.md#the-amqp-topology for how the pieces fit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from llama_agents.message_queues.delivery import DEAD_LETTER_TYPE


class QueueType(StrEnum):
    """RabbitMQ queue types llama-agents can declare.

    `quorum` (the default) is RabbitMQ's replicated, durable queue and counts redeliveries,
    which lets a message that crashes its consumer be dead-lettered; `classic` is lighter.
    """

    QUORUM = "quorum"
    CLASSIC = "classic"


def queue_name(exchange: str, message_type: str) -> str:
    """The durable queue consumers of `message_type` share: `<exchange>.<type>`."""
    return f"{exchange}.{message_type}"


def dead_letter_queue_name(exchange: str) -> str:
    """Where messages that failed for good are kept: `<exchange>.dead_letter`."""
    return queue_name(exchange, DEAD_LETTER_TYPE)


#: Deliveries a quorum queue allows beyond `max_redeliveries`: our own check dead-letters a
#: crash-looping message first, with a reason; the broker's limit is the backstop for when
#: that dead letter cannot be published (each failed settle hands the message back, which
#: counts a delivery).
DELIVERY_LIMIT_HEADROOM = 5

#: The dead-letter queue's own delivery limit: explicit, because an absent one means
#: "unlimited" on RabbitMQ 3.x but 20 on 4.x, and -1 (4.x's "unlimited") drops a message at
#: its first return on 3.x. Reading dead letters without removing them hands each back once.
DEAD_LETTER_DELIVERY_LIMIT = 1_000_000


def queue_arguments(
    queue_type: QueueType,
    exchange: str,
    max_redeliveries: int,
    quorum_group_size: int | None = None,
) -> dict[str, Any] | None:
    """The declaration arguments of a message type's queue (classic queues take none).

    A quorum queue gets an explicit delivery limit (RabbitMQ 4 defaults to 20 and drops the
    message when no dead-letter target is set) and dead-letters into `<exchange>.dead_letter`
    through the default exchange, at least once: the message stays in its queue until the
    dead-letter queue confirmed it, which RabbitMQ allows only with `x-overflow=reject-publish`.
    """
    if queue_type is QueueType.QUORUM:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": max_redeliveries + DELIVERY_LIMIT_HEADROOM,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue_name(exchange),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            **replication_arguments(quorum_group_size),
        }
    return None


def dead_letter_queue_arguments(
    queue_type: QueueType, quorum_group_size: int | None = None
) -> dict[str, Any] | None:
    """The dead-letter queue's arguments: the end of the line, so no dead-letter target."""
    if queue_type is QueueType.QUORUM:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT,
            **replication_arguments(quorum_group_size),
        }
    return None


def replication_arguments(quorum_group_size: int | None) -> dict[str, Any]:
    """On how many cluster nodes a new quorum queue keeps a replica.

    None leaves it to the broker, whose default (`quorum_cluster_size`, 3 on RabbitMQ 3.8 to
    4.x) puts a replica on every node of a cluster of up to three nodes, and on three of a
    larger one: a queue survives the loss of any one node. Set a size (5, say) to survive
    more; it only applies when the queue is created, and the broker compares it on every
    later declaration, so all the processes of a system must agree on it.
    """
    if quorum_group_size is None:
        return {}
    return {"x-quorum-initial-group-size": quorum_group_size}
