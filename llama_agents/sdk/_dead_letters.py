"""The control plane's `/dead-letters` API as `Call`s, with the models its answers parse into.

The models are the SDK's own (the server's live beside the broker code, which the SDK does
not import); they read the same JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from llama_agents.errors import ConfigurationError

from ._protocol import Call, model, segment


class DeadLetterInfo(BaseModel):
    """A dead letter: where it was going, why it died, after how many attempts, its body."""

    id: str
    routing_key: str
    queue: str
    reason: str
    attempts: int
    body: str
    headers: dict[str, Any] = Field(default_factory=dict)
    dead_lettered_at: datetime | None = None


class DeadLetterPage(BaseModel):
    """How many dead letters wait (None: the queue cannot tell), and the oldest of them."""

    count: int | None
    dead_letters: list[DeadLetterInfo]


class ReplayFailureInfo(BaseModel):
    id: str
    routing_key: str
    error: str


class ReplayReport(BaseModel):
    """What a replay put back, what it could not (still dead), the tasks it reopened."""

    replayed: list[DeadLetterInfo] = Field(default_factory=list)
    failed: list[ReplayFailureInfo] = Field(default_factory=list)
    reopened_tasks: list[str] = Field(default_factory=list)


class _Count(BaseModel):
    count: int | None


class _Purged(BaseModel):
    purged: int


def list_dead_letters(limit: int = 100) -> Call[DeadLetterPage]:
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ConfigurationError(f"limit must be an int from 1 to 1000, not {limit!r}")
    return Call("GET", "/dead-letters", model(DeadLetterPage), params={"limit": limit})


def count_dead_letters() -> Call[int | None]:
    return Call("GET", "/dead-letters/count", lambda r: _Count.model_validate_json(r.content).count)


def get_dead_letter(letter_id: str) -> Call[DeadLetterInfo]:
    path = f"/dead-letters/{segment(letter_id, 'dead-letter id')}"
    return Call("GET", path, model(DeadLetterInfo))


def replay_dead_letters(
    ids: list[str] | None = None, *, all: bool = False, reason: str | None = None
) -> Call[ReplayReport]:
    if (ids is None) == (not all):
        raise ConfigurationError("replay names dead letters (ids=[...]) or all=True, not both")
    if ids is not None:
        if isinstance(ids, str) or not ids:
            raise ConfigurationError("ids must be a non-empty list of dead-letter ids")
        for letter_id in ids:
            segment(letter_id, "dead-letter id")
    body: dict[str, Any] = {"ids": list(ids)} if ids is not None else {"all": True}
    if reason is not None:
        body["reason"] = reason
    return Call("POST", "/dead-letters/replay", model(ReplayReport), json=body)


def purge_dead_letters() -> Call[int]:
    return Call(
        "POST", "/dead-letters/purge", lambda r: _Purged.model_validate_json(r.content).purged
    )
