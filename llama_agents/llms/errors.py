"""Saying which LLM failed, where, and why, in one line a person can act on.

The OpenAI client's own errors name neither the model nor the server ("APIConnectionError:
Connection error."). `describe_llm_failure` finds the client error in an exception's chain
(agents and workflows wrap it) and names the LLM's class and model, the base URL it called
(never the API key) and the reason: refused, unreachable, timed out, or what the server said.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

_STATUS_HINTS = {
    401: "the server refused the API key (check OPENAI_API_KEY)",
    403: "the API key may not use this model or endpoint",
    404: "the server knows no such model or endpoint (check the model name and the base URL)",
    429: "rate limited, still after retries",
}


def is_llm_failure(exc: BaseException) -> bool:
    """Whether `exc` comes from an LLM client's call (an HTTP or API error in its chain)."""
    return any(_is_client_error(e) for e in _chain(exc))


def describe_llm_failure(exc: BaseException, llm: Any = None) -> str:
    """`exc` as one line: which LLM (class, model) at which URL failed, and why.

    When `exc` does not come from an LLM client (no HTTP error in its chain), this is just
    "<type>: <message>", so callers can use it for any failure of an LLM-driven step.
    """
    chain = _chain(exc)
    client_error = next((e for e in chain if _is_client_error(e)), None)
    if client_error is None:
        return f"{type(exc).__name__}: {exc}"
    request = _request_of(client_error)
    model = _model(llm, request)
    url = _base_url(llm, request)
    who = f"LLM {_class_name(llm, client_error)}"
    if model:
        who += f" (model {model!r})"
    if url:
        who += f" at {url}"
    reason = _reason(client_error, chain)
    return _redact(f"{who} failed: {reason}", llm)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, its causes and contexts, and the members of exception groups, in order."""
    seen: set[int] = set()
    order: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        order.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return order


def _is_client_error(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPError):
        return True
    try:
        import openai
    except ImportError:  # pragma: no cover - the OpenAI client is a dependency
        return False
    return isinstance(exc, openai.APIError)


def _request_of(exc: BaseException) -> httpx.Request | None:
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # httpx raises when an error was made without a request
        return None
    return request if isinstance(request, httpx.Request) else None


def _class_name(llm: Any, exc: BaseException) -> str:
    if llm is not None:
        return type(llm).__name__
    return "OpenAI-compatible API" if type(exc).__module__.startswith("openai") else "HTTP API"


def _model(llm: Any, request: httpx.Request | None) -> str | None:
    model = getattr(llm, "model", None)
    if isinstance(model, str) and model:
        return model
    if request is not None:
        try:
            body = json.loads(request.content or b"{}")
        except (ValueError, httpx.RequestNotRead):
            return None
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            return str(body["model"])
    return None


def _base_url(llm: Any, request: httpx.Request | None) -> str | None:
    url = getattr(llm, "api_base", None) or (str(request.url) if request is not None else None)
    if not url:
        return None
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host  # credentials never shown
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _reason(client_error: BaseException, chain: list[BaseException]) -> str:
    status = getattr(client_error, "status_code", None)
    if isinstance(status, int):
        said = _server_message(client_error)
        hint = _STATUS_HINTS.get(status) or (
            "the server failed, still after retries" if status >= 500 else None
        )
        return "; ".join(part for part in (f"HTTP {status}", said, hint) if part)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused: nothing listens there (is the LLM server running?)"
    if (
        any(isinstance(e, httpx.TimeoutException) for e in chain)
        or "Timeout" in type(client_error).__name__
    ):
        return "no answer in time (timeout)"
    if any(isinstance(e, httpx.ConnectError) for e in chain):
        detail = next((str(e) for e in reversed(chain) if isinstance(e, OSError)), "")
        return f"cannot connect{': ' + detail if detail else ''}"
    return f"{type(client_error).__name__}: {client_error}"


def _server_message(exc: BaseException) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            return message[:300]
    message = getattr(exc, "message", None)
    return message[:300] if isinstance(message, str) and message else None


def _redact(text: str, llm: Any) -> str:
    key = getattr(llm, "api_key", None)
    if isinstance(key, str) and len(key) >= 8:
        text = text.replace(key, "<api key>")
    return text
