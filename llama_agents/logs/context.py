"""Which task, step and service the code running now works for, for its log lines.

Set where a message is handled (`delivery.deliver`), so every line a handler logs, in any
module, carries the ids without being passed them; `extra={"task_id": ...}` on one call
wins over it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

#: The fields a log line can be tagged with.
CONTEXT_FIELDS = ("task_id", "step_id", "service", "trace_id")

_context: ContextVar[Mapping[str, str] | None] = ContextVar(
    "llama_agents_log_context", default=None
)


def log_context() -> Mapping[str, str]:
    """The ids known here (a task, a step, a service), possibly none."""
    return _context.get() or {}


@contextlib.contextmanager
def set_log_context(**ids: str | None) -> Iterator[None]:
    """Tag the log lines of the code run inside with these ids (None leaves one out)."""
    merged = {**log_context(), **{k: v for k, v in ids.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def message_ids(data: Mapping[str, object]) -> dict[str, str | None]:
    """The task and step ids a message's payload names (steps, results, runs all do)."""
    return {
        name: value if isinstance(value, str) else None
        for name, value in (("task_id", data.get("task_id")), ("step_id", data.get("step_id")))
    }
