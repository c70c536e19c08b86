"""How HTTP failures become library exceptions, so callers never see a raw httpx error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from llama_agents.errors import (  # ControlPlaneResponseError: its old import path
    ControlPlaneError,
    ControlPlaneResponseError,
    ControlPlaneUnavailableError,
)

__all__ = ["ControlPlaneResponseError", "response_detail", "translated_errors", "unavailable"]

#: How much of a non-JSON error body goes into an exception's message.
_MAX_DETAIL_CHARS = 300


def response_detail(response: httpx.Response) -> str:
    """The server's explanation of an error: FastAPI's `detail`, else the start of the body."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}]
        return "; ".join(_describe_validation_error(item) for item in detail)
    text = response.text.strip()[:_MAX_DETAIL_CHARS]
    return text or response.reason_phrase or "no detail given"


def _describe_validation_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    location = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    message = str(item.get("msg", "invalid value"))
    return f"{location}: {message}" if location else message


def unavailable(base_url: str, exc: httpx.HTTPError) -> ControlPlaneUnavailableError:
    """A transport failure, named by the URL the caller configured (the usual mistake)."""
    if isinstance(exc, httpx.TimeoutException):
        reason = f"no answer in time ({type(exc).__name__})"
    else:
        reason = str(exc) or type(exc).__name__
    return ControlPlaneUnavailableError(f"cannot reach the control plane at {base_url}: {reason}")


@contextmanager
def translated_errors(base_url: str) -> Iterator[None]:
    """Turn httpx's exceptions raised inside the block into the library's."""
    try:
        yield
    except httpx.TransportError as exc:  # refused, DNS, timeouts, dropped connections
        raise unavailable(base_url, exc) from exc
    except httpx.HTTPError as exc:  # undecodable bodies, too many redirects, ...
        raise ControlPlaneError(f"bad answer from the control plane at {base_url}: {exc}") from exc
