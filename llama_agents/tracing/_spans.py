"""The spans of a task's way through the mesh, and the context that ties them together.

Messaging spans follow OpenTelemetry's messaging semantic conventions (`messaging.system`,
`messaging.destination.name`, `messaging.message.id`, `messaging.operation.type`, and for
RabbitMQ the routing key); ours name the task, step, service and session
(`llama_agents.task_id` ...). Attributes are only computed for spans that record.

Most traces are ones the sampler dropped (at 10%, nine in ten), so their path is the one
kept cheap: no span at all, only the context carried on (a shared no-op or a small class
around `attach`/`detach`, not a generator), and each stored context parsed once
(`_context_of`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
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
    context = trace.get_current_span().get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def _sampled(carrier: Mapping[str, str]) -> bool:
    """Whether a W3C `traceparent` says its trace is sampled (its flags' lowest bit)."""
    parent = carrier.get("traceparent", "")
    try:
        return bool(int(parent[-2:], 16) & 1)
    except ValueError:
        return True  # not ours to judge: let the propagator read it


def _trace_id_of(carrier: Mapping[str, str]) -> str:
    """The trace id a W3C `traceparent` names, as hex (`00-<trace id>-<span id>-<flags>`)."""
    return carrier.get("traceparent", "")[3:35]


#: Parsed trace contexts by their headers: a task's stored context is read at each of its
#: hops, and a parsed `Context` is immutable, so one parse serves them all.
_parsed: dict[tuple[str, str | None], otel_context.Context] = {}
_PARSED_MAX = 4096


def _context_of(carrier: Mapping[str, str]) -> otel_context.Context:
    """`carrier`'s context, as the W3C propagator reads it (parsed once per context)."""
    key = (carrier.get("traceparent", ""), carrier.get("tracestate"))
    found = _parsed.get(key)
    if found is None:
        found = _w3c.extract(carrier)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()  # old tasks' contexts: cheaper to forget than to rank
        _parsed[key] = found
    return found


class _Within:
    """Work runs in `context` (made current on enter, restored on exit): the context of a
    dropped trace, carried on with no span."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: otel_context.Context) -> None:
        self._context = context
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> Any:  # `Settled` for `consuming`, ignored elsewhere
        self._token = otel_context.attach(self._context)
        return _settled_noop

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        otel_context.detach(self._token)


def publishing(
    message: QueueMessage, system: str, destination: str | None
) -> contextlib.AbstractContextManager[None]:
    if _dropped():
        _inject(message)
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
        _inject(message)
        yield


def _inject(message: QueueMessage) -> None:
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
        return _Within(_context_of(carrier))
    return _consume_span(message, consumer_type, system, destination, carrier)


@contextlib.contextmanager
def _consume_span(
    message: QueueMessage,
    consumer_type: str,
    system: str,
    destination: str | None,
    carrier: Mapping[str, str],
) -> Iterator[Settled]:
    parent = _context_of(carrier) if carrier else None
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
    current_id = trace.get_current_span().get_span_context().trace_id
    if current_id and format(current_id, "032x") == _trace_id_of(carrier):
        return _OFF  # already in the task's trace (a result of it being handled)
    stored = _context_of(carrier)
    if not trace.get_current_span(stored).get_span_context().is_valid:
        return _OFF
    return _Within(stored)


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
