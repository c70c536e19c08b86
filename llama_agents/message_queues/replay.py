"""Putting dead letters back: what every queue's replay shares.

A replayed message goes back to the routing key it was first published with, as a fresh
message: the headers that said why it died (ours and RabbitMQ's `x-death`) and its failure
count are dropped, so its consumers get their full number of attempts again.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, Field

from llama_agents.message_queues.delivery import (
    ATTEMPTS_HEADER,
    DEAD_AT_HEADER,
    ORIGIN_HEADER,
    ORIGIN_QUEUE_HEADER,
    REASON_HEADER,
    DeadLetter,
)

#: Headers a dead letter carries that a replayed message must not.
_DEATH_HEADERS = frozenset(
    {
        ATTEMPTS_HEADER,
        REASON_HEADER,
        ORIGIN_HEADER,
        ORIGIN_QUEUE_HEADER,
        DEAD_AT_HEADER,
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)


class ReplayFailure(BaseModel):
    """A dead letter that could not be put back (it stays in the dead-letter queue)."""

    id: str
    routing_key: str
    error: str


class ReplayOutcome(BaseModel):
    """What a replay did: the letters put back, and the ones left where they were."""

    replayed: list[DeadLetter] = Field(default_factory=list)
    failed: list[ReplayFailure] = Field(default_factory=list)


def replay_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's headers without its death: attempt count reset, reasons gone."""
    return {k: v for k, v in headers.items() if k not in _DEATH_HEADERS}


def selects(letter: DeadLetter, ids: Collection[str] | None, reason: str | None) -> bool:
    """Whether a replay of `ids` (None: all) with `reason` (a case-insensitive substring of
    the dead-letter reason; None: any) takes `letter`."""
    if ids is not None and letter.id not in ids:
        return False
    return reason is None or reason.lower() in letter.reason.lower()
