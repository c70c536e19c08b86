"""No secrets in logs: passwords in URLs and API keys are replaced before a line is written.

Two nets: patterns (a URL's `user:password@`, `Bearer <token>`, `api_key=<value>`, an
OpenAI-style `sk-...` key) and the values themselves of the secrets this process was given
(environment variables whose names say they hold a key, token, password or secret), so a
key is hidden even where it appears bare.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"

#: Environment variables whose values are secrets (by the end of their name).
_SECRET_NAMES = re.compile(r"(API_KEY|_KEY|_TOKEN|_PASSWORD|_PASS|_SECRET|_URL)$")
#: Secret values shorter than this are not hunted bare (too many false hits).
_MIN_SECRET = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^@/?#\s]+@"), rf"\1:{MASK}@"),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1{MASK}"),
    (
        re.compile(
            r"""(\b(?:api[_-]?key|x-api-key|token|password|passwd|secret)["']?\s*[:=]\s*["']?)"""
            r"""[^\s"',;&}]+""",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), MASK),
)


def _secret_values() -> list[str]:
    values: list[str] = []
    for name, value in os.environ.items():
        if not _SECRET_NAMES.search(name.upper()) or len(value) < _MIN_SECRET:
            continue
        if name.upper().endswith("_URL"):
            # Only the password of a URL is secret.
            found = re.search(r"://[^:/?#@\s]*:([^@/?#\s]+)@", value)
            if found is None or len(found.group(1)) < _MIN_SECRET // 2:
                continue
            value = found.group(1)
        values.append(value)
    # Longest first, so a key that contains another is hidden whole.
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every password in a URL and every API key replaced by `***`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's message (and traceback) without secrets.

    The secrets of the environment are read when the filter is made (at `configure_logging`),
    not per line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets = _secret_values()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the formatter report it as logging does
            return True
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True
