"""The spans of a task's way through the mesh, and the context that ties them together.

Messaging spans follow OpenTelemetry's messaging semantic conventions (`messaging.system`,
`messaging.destination.name`, `messaging.message.id`, `messaging.operation.type`, and for
RabbitMQ the routing key); ours name the task, step, service and session
(`llama_agents.task_id` ...). Attributes are only computed for spans that record.

Most traces are ones the sampler dropped (at 10%, nine in ten), so their path is the one
kept cheap: no span at all, only the context carried on (a shared no-op or a small class
around `attach`/`detach`, not a generator); each stored context parsed once (`_parsed_of`),
a plain `traceparent` without the propagator's regular expression (`_parse`); and while a
context entered here is current (`_carrying`), the hooks know whether it is dropped, and the
headers that carry it on, without asking OpenTelemetry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llama_agents.tracing import _OFF, Settled, _settled_noop

if TYPE_CHECKING:
    from llama_agents.messages import QueueMessage
    from llama_agents.messages.records import TaskRecord

_tracer = trace.get_tracer("llama_agents")
#: Messages and task records carry W3C trace context (`traceparent`, `tracestate`) and only
#: that: its own propagator, not the global composite one (whose baggage part would write a
#: header no consumer reads, and read one no message carries).
_w3c = TraceContextTextMapPropagator()

TASK_ID = "llama_agents.task_id"
STEP_ID = "llama_agents.step_id"
SERVICE = "llama_agents.service"
SESSION_ID = "llama_agents.session_id"


def _ids(data: Mapping[str, Any]) -> dict[str, str]:
    """The task, step and session ids a message's payload names."""
    found = {}
    for attribute, key in ((TASK_ID, "task_id"), (STEP_ID, "step_id"), (SESSION_ID, "session_id")):
        value = data.get(key)
        if isinstance(value, str):
            found[attribute] = value
    return found


def _messaging(
    system: str, operation: str, kind: str, message: QueueMessage, destination: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.message.id": message.id_,
        "messaging.destination.name": destination or message.type,
    }
    if system == "rabbitmq":
        attributes["messaging.rabbitmq.destination.routing_key"] = message.type
    if message.correlation_id:
        attributes["messaging.message.conversation_id"] = message.correlation_id
    if message.action is not None:
        attributes["llama_agents.action"] = message.action.value
    return attributes


def _dropped() -> bool:
    """The current trace is one the sampler dropped: spans under it would record nothing,
    so the hooks make none (the context still travels, so nothing downstream starts a
    trace of its own)."""
    within = _carrying()
    if within is not None:
        return within.parsed.dropped
    return _current_dropped()


def _current_dropped() -> bool:
    """`_dropped`, asking OpenTelemetry (no context of ours is current)."""
    context = trace.get_current_span().get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def _sampled(carrier: Mapping[str, str]) -> bool:
    """Whether a W3C `traceparent` says its trace is sampled (its flags' lowest bit)."""
    parent = carrier.get("traceparent", "")
    try:
        return bool(int(parent[-2:], 16) & 1)
    except ValueError:
        return True  # not ours to judge: let the propagator read it


def _traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A W3C `traceparent` in its one canonical form (version 00, lower-case hex)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


class _Parsed:
    """Trace context headers, parsed: the context to enter, its trace id (0: none), whether
    the sampler dropped it, and the headers that name it exactly (None unless a plain
    `traceparent` did: see `_parse`)."""

    __slots__ = ("context", "dropped", "headers", "trace_id")

    def __init__(
        self,
        context: otel_context.Context,
        trace_id: int,
        dropped: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.context = context
        self.trace_id = trace_id
        self.dropped = dropped
        self.headers = headers


def _parse(carrier: Mapping[str, str]) -> _Parsed:
    """`carrier`'s context, as the W3C propagator reads it.

    A lone `traceparent` in its one canonical form (version 00, lower-case hex, ids not
    zero), which is all this mesh writes, is read here without the propagator's regular
    expression; anything else (a `tracestate`, another version, a malformed header) is left
    to the propagator, which judges it."""
    parent = carrier.get("traceparent", "")
    if len(carrier) == 1 and len(parent) == 55:
        try:
            trace_id, span_id = int(parent[3:35], 16), int(parent[36:52], 16)
            flags = int(parent[53:], 16)
        except ValueError:
            trace_id = span_id = flags = 0
        if trace_id and span_id and parent == _traceparent(trace_id, span_id, flags):
            span = trace.NonRecordingSpan(
                trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
            )
            context = trace.set_span_in_context(span, otel_context.Context())
            return _Parsed(context, trace_id, not flags & 1, {"traceparent": parent})
    context = _w3c.extract(carrier)
    found = trace.get_current_span(context).get_span_context()
    if not found.is_valid:
        return _Parsed(context, 0, False)
    return _Parsed(context, found.trace_id, not found.trace_flags.sampled)


#: Parsed trace contexts by their headers: a task's stored context is read at each of its
#: hops, and a parsed `Context` is immutable, so one parse serves them all.
_parsed: dict[tuple[str, str | None], _Parsed] = {}
_PARSED_MAX = 4096


def _parsed_of(carrier: Mapping[str, str], *, keep: bool = True) -> _Parsed:
    """`carrier` parsed (once per context); `keep=False`: parsed again unless kept already
    (a message's context, seen once where it is not a task's stored one: kept, it would
    only crowd out the tasks' contexts and give the collector more to scan)."""
    key = (carrier.get("traceparent", ""), carrier.get("tracestate"))
    found = _parsed.get(key)
    if found is None:
        found = _parse(carrier)
        if not keep:
            return found
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()  # old tasks' contexts: cheaper to forget than to rank
        _parsed[key] = found
    return found


#: The context entered last by a `_Within`, whether or not it is still the current one.
_within: ContextVar[_Within | None] = ContextVar("llama_agents_within", default=None)


def _carrying() -> _Within | None:
    """The `_Within` whose context is current: the one entered last, if nothing started a
    span or entered another context inside it since."""
    within = _within.get()
    if within is not None and otel_context.get_current() is within.parsed.context:
        return within
    return None


class _Within:
    """Work runs in a parsed context (made current on enter, restored on exit) with no span
    of its own: a dropped trace carried on, or a task's stored context entered. While it is
    current, the hooks know whether its trace is dropped, and the headers that carry it on,
    without asking OpenTelemetry again."""

    __slots__ = ("_tokens", "parsed")

    def __init__(self, parsed: _Parsed) -> None:
        self.parsed = parsed
        self._tokens: tuple[Token[otel_context.Context], Token[_Within | None]] | None = None

    def __enter__(self) -> Any:  # `Settled` for `consuming`, ignored elsewhere
        self._tokens = (otel_context.attach(self.parsed.context), _within.set(self))
        return _settled_noop

    def __exit__(self, *exc_info: object) -> None:
        assert self._tokens is not None
        attached, within = self._tokens
        _within.reset(within)
        otel_context.detach(attached)


def publishing(
    message: QueueMessage, system: str, destination: str | None
) -> contextlib.AbstractContextManager[None]:
    within = _carrying()
    if within is not None:  # a context entered here: its headers, unless it is sampled
        parsed = within.parsed
        if not parsed.dropped:
            return _publish_span(message, system, destination)
        if parsed.headers is not None:
            message.headers.update(parsed.headers)  # exactly what the propagator writes
        else:
            _w3c_inject(message)
        return _OFF
    if _current_dropped():
        _w3c_inject(message)
        return _OFF
    return _publish_span(message, system, destination)


@contextlib.contextmanager
def _publish_span(message: QueueMessage, system: str, destination: str | None) -> Iterator[None]:
    with _tracer.start_as_current_span(
        f"publish {message.type}", kind=SpanKind.PRODUCER, record_exception=True
    ) as span:
        if span.is_recording():
            span.set_attributes(_messaging(system, "publish", "send", message, destination))
            span.set_attributes(_ids(message.data))
        _w3c_inject(message)
        yield


def _w3c_inject(message: QueueMessage) -> None:
    """The current trace context into the message's headers."""
    carrier: dict[str, str] = {}
    _w3c.inject(carrier)
    message.headers.update(carrier)


def consuming(
    message: QueueMessage,
    consumer_type: str,
    *,
    system: str,
    destination: str | None,
    headers: Mapping[str, Any] | None,
) -> contextlib.AbstractContextManager[Settled]:
    carrier = _carrier(headers) or _carrier(message.headers)
    if carrier and not _sampled(carrier):
        return _Within(_parsed_of(carrier, keep=False))
    return _consume_span(message, consumer_type, system, destination, carrier)


@contextlib.contextmanager
def _consume_span(
    message: QueueMessage,
    consumer_type: str,
    system: str,
    destination: str | None,
    carrier: Mapping[str, str],
) -> Iterator[Settled]:
    parent = _parsed_of(carrier, keep=False).context if carrier else None
    with _tracer.start_as_current_span(
        f"process {message.type}", context=parent, kind=SpanKind.CONSUMER
    ) as span:
        if span.is_recording():
            span.set_attributes(_messaging(system, "process", "process", message, destination))
            span.set_attributes(_ids(message.data))
            span.set_attribute(SERVICE, consumer_type)
            if message.stats.redelivered:
                span.set_attribute("llama_agents.redelivered", True)
        yield _settler(span)


def _carrier(headers: Mapping[str, Any] | None) -> dict[str, str]:
    if not headers:
        return {}
    found = {}
    for name in ("traceparent", "tracestate"):
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str):
            found[name] = value
    return found


def _settler(span: Span) -> Settled:
    def settled(verdict: str, reason: str | None = None) -> None:
        if not span.is_recording():
            return
        span.set_attribute("llama_agents.delivery.verdict", verdict)
        if verdict != "ack":
            span.set_status(Status(StatusCode.ERROR, reason))

    return settled


def _task_attributes(record: TaskRecord) -> dict[str, str]:
    attributes = {TASK_ID: record.task_id}
    if record.session_id:
        attributes[SESSION_ID] = record.session_id
    if record.service:
        attributes[SERVICE] = record.service
    return attributes


def start_task(record: TaskRecord) -> None:
    within = _carrying()
    if within is not None and within.parsed.dropped and within.parsed.headers is not None:
        record.trace_context = dict(within.parsed.headers)  # the dropped request's trace
        return
    carrier: dict[str, str] = {}
    if _dropped():  # the request's trace was not sampled: the task stays in it, unrecorded
        _w3c.inject(carrier)
        record.trace_context = carrier
        return
    with _tracer.start_as_current_span("create task") as span:
        if span.is_recording():
            span.set_attributes(_task_attributes(record))
        _w3c.inject(carrier)
    record.trace_context = carrier


def task_context(carrier: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
    parsed = _parsed_of(carrier)
    if not parsed.trace_id:
        return _OFF
    within = _carrying()
    if within is not None and within.parsed.trace_id == parsed.trace_id:
        return _OFF  # already carrying the task's dropped trace
    if trace.get_current_span().get_span_context().trace_id == parsed.trace_id:
        return _OFF  # already in the task's trace (a result of it being handled)
    return _Within(parsed)


def decision(record: TaskRecord, orchestrator: str) -> contextlib.AbstractContextManager[None]:
    carrier = record.trace_context
    if carrier and not _sampled(carrier):
        return task_context(carrier)  # a dropped trace: its context, no span
    return _decision_span(record, orchestrator)


@contextlib.contextmanager
def _decision_span(record: TaskRecord, orchestrator: str) -> Iterator[None]:
    with task_context(record.trace_context):
        if _dropped():
            yield
            return
        with _tracer.start_as_current_span("decide", record_exception=True) as span:
            if span.is_recording():
                span.set_attributes(_task_attributes(record))
                span.set_attribute("llama_agents.orchestrator", orchestrator)
            yield


def step(service: str, message: QueueMessage) -> contextlib.AbstractContextManager[None]:
    if _dropped():
        return _OFF
    return _step_span(service, message)


@contextlib.contextmanager
def _step_span(service: str, message: QueueMessage) -> Iterator[None]:
    with _tracer.start_as_current_span(f"step {service}", record_exception=True) as span:
        if span.is_recording():
            span.set_attributes(_ids(message.data))
            span.set_attribute(SERVICE, service)
        yield
