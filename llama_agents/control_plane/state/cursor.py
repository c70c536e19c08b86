"""The opaque cursor of a task listing, the same for every backend: where the last page ended
(the last task's creation time, as fixed-width UTC text, and its id)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from llama_agents.errors import ConfigurationError


def timestamp_text(value: datetime) -> str:
    """A timestamp as fixed-width UTC text, so that text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def encode_cursor(created_at: str, task_id: str) -> str:
    """An opaque listing cursor: where the previous page ended."""
    text = json.dumps([created_at, task_id], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position a cursor names; `ConfigurationError` for one no store made."""
    try:
        created_at, task_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(created_at), str(task_id)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid cursor {cursor[:50]!r}") from exc


def decode_cursor_time(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names, its time parsed (for a store that keeps real timestamps)."""
    created_at, task_id = decode_cursor(cursor)
    try:
        at = datetime.fromisoformat(created_at)
    except ValueError as exc:
        raise ConfigurationError(f"invalid cursor {cursor[:50]!r}") from exc
    if at.tzinfo is None:
        raise ConfigurationError(f"invalid cursor {cursor[:50]!r}")
    return at, task_id
