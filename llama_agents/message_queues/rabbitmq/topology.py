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


def queue_arguments(queue_type: QueueType) -> dict[str, Any] | None:
    """The declaration arguments for `queue_type` (classic queues are declared without any)."""
    if queue_type is QueueType.QUORUM:
        return {"x-queue-type": "quorum"}
    return None
