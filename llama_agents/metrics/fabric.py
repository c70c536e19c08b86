"""Metrics of the message fabric: publisher confirms, redeliveries, retries, dead letters.

One set per message-queue object (`BaseMessageQueue.metrics`); the transports call these
hooks. Labels are queue names (message types): bounded by the services of a system.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import Counter, Histogram

from llama_agents.metrics._base import CONFIRM_BUCKETS, MetricSet

T = TypeVar("T")

#: Dead-letter reasons (free text, see `message_queues/delivery.py`) by their fixed start,
#: mapped to a bounded label value.
_REASONS = (
    ("undecodable", "undecodable"),
    ("invalid payload", "invalid_payload"),
    ("not retryable", "rejected"),
    ("handler failed", "handler_failed"),
    ("redelivered", "redelivery_limit"),
)


def reason_label(reason: str) -> str:
    """The bounded `reason` label of a dead letter's free-text reason."""
    for prefix, label in _REASONS:
        if reason.startswith(prefix):
            return label
    return "other"


class FabricMetrics(MetricSet):
    """What one message-queue object saw."""

    def __init__(self, enabled: bool | None = None) -> None:
        super().__init__(enabled)
        r = self.registry
        self.publish_confirm = Histogram(
            "llama_agents_publish_confirm_duration_seconds",
            "Seconds from publishing a message to the broker's confirm.",
            buckets=CONFIRM_BUCKETS,
            registry=r,
        )
        self.redeliveries = Counter(
            "llama_agents_redeliveries",
            "Messages the broker delivered again (a consumer died or lost its channel "
            "holding them).",
            ["queue"],
            registry=r,
        )
        self.retries = Counter(
            "llama_agents_message_retries",
            "Messages put back on their queue after their handler raised.",
            ["queue"],
            registry=r,
        )
        self.dead_letters = Counter(
            "llama_agents_dead_letters",
            "Messages moved to the dead-letter queue, by reason.",
            ["queue", "reason"],
            registry=r,
        )

    async def timed_publish(self, publish: Awaitable[T]) -> T:
        """Await `publish` (which returns once the broker confirmed) and time it."""
        if not self.enabled:
            return await publish
        started = time.perf_counter()
        result = await publish
        self.publish_confirm.observe(time.perf_counter() - started)
        return result

    def delivered(self, queue: str, redelivered: bool) -> None:
        if redelivered and self.enabled:
            self.redeliveries.labels(queue).inc()

    def settled(self, queue: str, verdict: str, reason: str | None = None) -> None:
        """A delivery was settled with the broker: acknowledged (`ack`), put back for a retry
        (`retry`) or dead-lettered (`dead_letter`, for `reason`)."""
        if not self.enabled or verdict == "ack":
            return
        if verdict == "retry":
            self.retries.labels(queue).inc()
        else:
            self.dead_letters.labels(queue, reason_label(reason or "")).inc()
