"""The spans of a task's way through the mesh, and the context that ties them together.

Messaging spans follow OpenTelemetry's messaging semantic conventions (`messaging.system`,
`messaging.destination.name`, `messaging.message.id`, `messaging.operation.type`, and for
RabbitMQ the routing key); ours name the task, step, service and session
(`llama_agents.task_id` ...). Attributes are only computed for spans that record: a trace
the sampler dropped costs a non-recording span and no more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llama_agents.tracing import Settled, _settled_noop

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


@contextlib.contextmanager
def _within(carrier: Mapping[str, str]) -> Iterator[None]:
    token = otel_context.attach(_w3c.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def publishing(message: QueueMessage, system: str, destination: str | None) -> Iterator[None]:
    if _dropped():
        _inject(message)
        yield
        return
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


@contextlib.contextmanager
def consuming(
    message: QueueMessage,
    consumer_type: str,
    *,
    system: str,
    destination: str | None,
    headers: Mapping[str, Any] | None,
) -> Iterator[Settled]:
    carrier = _carrier(headers) or _carrier(message.headers)
    if carrier and not _sampled(carrier):
        with _within(carrier):
            yield _settled_noop
        return
    parent = _w3c.extract(carrier) if carrier else None
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


@contextlib.contextmanager
def task_context(carrier: Mapping[str, str]) -> Iterator[None]:
    current_id = trace.get_current_span().get_span_context().trace_id
    if current_id and format(current_id, "032x") == _trace_id_of(carrier):
        yield  # already in the task's trace (a result of it being handled): nothing to parse
        return
    stored = _w3c.extract(carrier)
    wanted = trace.get_current_span(stored).get_span_context()
    current = trace.get_current_span().get_span_context()
    if not wanted.is_valid or (current.is_valid and current.trace_id == wanted.trace_id):
        yield
        return
    token = otel_context.attach(stored)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def decision(record: TaskRecord, orchestrator: str) -> Iterator[None]:
    with task_context(record.trace_context):
        if _dropped():
            yield
            return
        with _tracer.start_as_current_span("decide", record_exception=True) as span:
            if span.is_recording():
                span.set_attributes(_task_attributes(record))
                span.set_attribute("llama_agents.orchestrator", orchestrator)
            yield


@contextlib.contextmanager
def step(service: str, message: QueueMessage) -> Iterator[None]:
    if _dropped():
        yield
        return
    with _tracer.start_as_current_span(f"step {service}", record_exception=True) as span:
        if span.is_recording():
            span.set_attributes(_ids(message.data))
            span.set_attribute(SERVICE, service)
        yield
