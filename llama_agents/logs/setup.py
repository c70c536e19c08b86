"""`configure_logging()`: one handler on the root logger, in the format the environment asks."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from llama_agents._settings import env_str
from llama_agents.errors import ConfigurationError
from llama_agents.logs.formats import JsonFormatter, TextFormatter
from llama_agents.logs.redact import RedactingFilter

LOG_FORMATS = ("text", "json")

_handler: logging.Handler | None = None


def is_configured() -> bool:
    """True once `configure_logging()` installed its handler (servers then let their own
    loggers, uvicorn's included, go through it)."""
    return _handler is not None


def configure_logging(
    level: int | str | None = None, *, format: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log line to `stream` (stderr) in `format`, secrets redacted.

    `format`: `text` or `json`; default `LLAMA_AGENTS_LOG_FORMAT`, else `text`. `level`, when
    given, is the root logger's. Calling it again replaces the handler it installed before,
    and leaves other handlers alone.
    """
    global _handler
    chosen = (format or env_str("LOG_FORMAT", "text")).strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigurationError(
            f"LLAMA_AGENTS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}"
        )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
    # Python's warnings go through the same handler: in JSON mode, no line is left bare.
    logging.captureWarnings(True)
    _handler = handler
    return handler
