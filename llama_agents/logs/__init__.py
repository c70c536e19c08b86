"""Logging for processes that run a system: text for a terminal, JSON lines for machines.

`configure_logging()` is what the CLI's entrypoints call. `LLAMA_AGENTS_LOG_FORMAT=json`
gives one JSON object per line (time, level, logger, message, and the task, step, service
and trace ids where known); `text`, the default, stays readable in a terminal. Either way a
filter removes secrets (passwords in URLs, API keys) before a line is written.
"""

from llama_agents.logs.context import log_context, set_log_context
from llama_agents.logs.redact import RedactingFilter, redact
from llama_agents.logs.setup import LOG_FORMATS, configure_logging, is_configured

__all__ = [
    "LOG_FORMATS",
    "RedactingFilter",
    "configure_logging",
    "is_configured",
    "log_context",
    "redact",
    "set_log_context",
]
