"""The two line formats: text for people, one JSON object per line for log collectors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from llama_agents.logs.context import CONTEXT_FIELDS, log_context

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _trace_id() -> str | None:
    """The current OpenTelemetry trace id, when OpenTelemetry is installed and tracing."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def context_of(record: logging.LogRecord) -> dict[str, str]:
    """The ids a record carries: its own (`extra=`) over the handler's context."""
    ids = dict(log_context())
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            ids[name] = str(value)
    if "trace_id" not in ids:
        trace_id = _trace_id()
        if trace_id is not None:
            ids["trace_id"] = trace_id
    return ids


class TextFormatter(logging.Formatter):
    """The usual text line, with `[task=... step=...]` appended where they are known."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = context_of(record)
        if not ids:
            return line
        tags = " ".join(f"{k.removesuffix('_id')}={v}" for k, v in ids.items())
        first, newline, rest = line.partition("\n")
        return f"{first} [{tags}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: never a bare newline inside, whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(context_of(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)
