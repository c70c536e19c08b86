"""How the CLI reports a failure: one `Error: ...` line on stderr and exit status 1.

The traceback goes to the log at DEBUG, which `llama-agents -v` shows; without `-v` a person
reads one line saying what went wrong, never a stack of frames.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from llama_agents.errors import LlamaAgentsError

logger = logging.getLogger("llama_agents.console")

#: Exceptions from outside the library that still say what is wrong in their message: the
#: network (OSError), HTTP (httpx) and LLM providers (openai). Matched by module, so the CLI
#: need not import those packages to recognise their errors.
_EXPECTED_MODULES = ("httpx", "httpcore", "openai", "aio_pika", "aiormq", "pamqp")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `Error: <message>` (on one line) on stderr and exit."""
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


def one_line(text: str) -> str:
    return " ".join(text.split())


def _innermost(exc: BaseException) -> BaseException:
    """The one exception of an exception group (asyncio.TaskGroup wraps what failed)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def is_expected(exc: BaseException) -> bool:
    """True for errors a user can act on from their message alone."""
    if isinstance(exc, LlamaAgentsError | OSError):
        return True
    return any(kind.__module__.split(".")[0] in _EXPECTED_MODULES for kind in type(exc).__mro__)


def describe(exc: BaseException) -> str:
    """What went wrong, in one line."""
    exc = _innermost(exc)
    text = one_line(str(exc))
    if isinstance(exc, LlamaAgentsError) and text:
        return text
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if not is_expected(exc):
        described += " (run `llama-agents -v ...` to see where)"
    return described


def report_failure(exc: BaseException) -> NoReturn:
    """Log the traceback (shown with `-v`), then print one `Error:` line and exit 1."""
    logger.debug("the command failed", exc_info=exc)
    fail(describe(exc))
