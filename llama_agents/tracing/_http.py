"""The server span of each request to our HTTP apps, paid for only where a span records.

FastAPI's own telemetry makes the same span, but at a cost on every request whether its trace
is sampled or not: the span's attributes built and set, `send` and `receive` wrapped, a walk
of the middleware stack, a context attached even for a request it excludes. In the echo
pipeline with the sampler at 0, tracing cost +7.9% of the system's CPU with it and +5.7%
with this (the README's tracing section has the figures). Here:

- an excluded request (`_setup.excluded_path`: an untraced read, a probe) costs the test;
- a request in a trace its caller's sampler dropped carries that context on, with no span;
- a request that starts a trace asks the sampler; a dropped one carries its new context on
  (the task it creates stays in that trace, unrecorded);
- only a span that records gets its attributes (OpenTelemetry's HTTP semantic conventions),
  its route, its status code, and an error status for a 5xx or an exception.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_agents.tracing._spans import (
    _Parsed,
    _parsed_of,
    _sampled,
    _traceparent,
    _Within,
)

_tracer = trace.get_tracer("llama_agents.http")

_TRACE_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


def _trace_headers(scope: Scope) -> dict[str, str]:
    """The request's W3C trace context headers (the last one of each name)."""
    found = {}
    for name, value in scope.get("headers") or ():
        key = _TRACE_HEADERS.get(name)
        if key is not None:
            found[key] = value.decode("latin-1")
    return found


def _dropped_root(span: Span, parent: Context | None) -> _Parsed:
    """The context of a new trace the sampler dropped (under `parent`, else the current
    context), as `_Within` carries it."""
    context = span.get_span_context()
    headers = None
    if not context.trace_state:
        headers = {
            "traceparent": _traceparent(context.trace_id, context.span_id, context.trace_flags)
        }
    return _Parsed(trace.set_span_in_context(span, parent), context.trace_id, True, headers)


class ServerSpans:
    """ASGI middleware: one server span per request (see the module's docstring).

    Args:
        app: the application it wraps.
        excluded: which requests make no span at all.
    """

    def __init__(self, app: ASGIApp, excluded: Callable[[MutableMapping[str, Any]], bool]) -> None:
        self.app = app
        self.excluded = excluded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.excluded(scope):
            await self.app(scope, receive, send)
            return
        carrier = _trace_headers(scope)
        if carrier and not _sampled(carrier):
            with _Within(_parsed_of(carrier, keep=False)):
                await self.app(scope, receive, send)
            return
        parent = _parsed_of(carrier, keep=False).context if carrier else None
        method = scope.get("method") or "HTTP"
        span = _tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        if not span.is_recording():
            with _Within(_dropped_root(span, parent)):
                await self.app(scope, receive, send)
            return
        await self._recorded(span, method, scope, receive, send)

    async def _recorded(
        self, span: Span, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        span.set_attributes(_request_attributes(scope, method))
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                await self.app(scope, receive, sending)
        except Exception as exc:  # not a cancellation (a server stopping): no error of its own
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        else:
            if status is None or status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status or "incomplete_response"))
        finally:
            route = _route_of(scope)
            if route is not None:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.end()


def _request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope.get("path", ""),
    }
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    return attributes


def _route_of(scope: Scope) -> str | None:
    """The matched route's template (`/tasks/{task_id}`), not the path: bounded, and what
    the span is named after."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return None
