"""The tracing hooks read a stored or received `traceparent` without OpenTelemetry's
propagator when it is in the one form this mesh writes; whatever they read must be what the
propagator reads, and what they carry on must be what it would write."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llama_agents import QueueMessage
from llama_agents.tracing import _spans

W3C = TraceContextTextMapPropagator()
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"

CARRIERS = [
    {"traceparent": f"00-{TRACE}-{SPAN}-00"},
    {"traceparent": f"00-{TRACE}-{SPAN}-01"},
    {"traceparent": f"00-{TRACE}-{SPAN}-03"},
    {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},  # upper case: not W3C
    {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},  # zero trace id
    {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},  # zero span id
    {"traceparent": f"ff-{TRACE}-{SPAN}-01"},  # forbidden version
    {"traceparent": f"01-{TRACE}-{SPAN}-01"},  # a later version
    {"traceparent": f"00-{TRACE}-{SPAN}-01-extra"},
    {"traceparent": f"00_{TRACE}_{SPAN}_01"},
    {"traceparent": f"00-+{TRACE[1:]}-{SPAN}-01"},  # int() would take a sign
    {"traceparent": f"00-{TRACE[:-1]}_-{SPAN}-01"},  # ... and an underscore
    {"traceparent": f"00- {TRACE[1:]}-{SPAN}-01"},  # ... and a space
    {"traceparent": f"00-{TRACE}-{SPAN}-zz"},
    {"traceparent": ""},
    {"traceparent": "garbage"},
    {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=value,other=1"},
    {"traceparent": f"00-{TRACE}-{SPAN}-00", "tracestate": ""},
]


def _span_context(context: otel_context.Context) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()


@pytest.mark.parametrize("carrier", CARRIERS, ids=lambda carrier: repr(carrier))
def test_a_carrier_reads_as_the_propagator_reads_it(carrier: dict[str, str]) -> None:
    parsed = _spans._parse(carrier)
    ours, theirs = _span_context(parsed.context), _span_context(W3C.extract(carrier))
    assert ours == theirs
    assert ours.trace_state == theirs.trace_state
    assert parsed.trace_id == (theirs.trace_id if theirs.is_valid else 0)
    assert parsed.dropped == (theirs.is_valid and not theirs.trace_flags.sampled)
    if parsed.headers is not None:  # carried on as the propagator would write it
        written: dict[str, str] = {}
        W3C.inject(written, context=parsed.context)
        assert parsed.headers == written


def test_a_dropped_trace_entered_carries_its_headers_and_nothing_inside_mistakes_it() -> None:
    dropped = {"traceparent": f"00-{TRACE}-{SPAN}-00"}
    sampled = {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    with _spans.task_context(dropped):
        assert _spans._dropped()
        message = QueueMessage(type="onward", data={})
        with _spans.publishing(message, "rabbitmq", "exchange"):
            pass
        assert message.headers["traceparent"] == dropped["traceparent"]
        # Another context entered inside it is judged on its own: here a sampled one.
        inner = trace.set_span_in_context(
            trace.NonRecordingSpan(_span_context(_spans._parsed_of(sampled).context))
        )
        token = otel_context.attach(inner)
        try:
            assert not _spans._dropped()
        finally:
            otel_context.detach(token)
        assert _spans._dropped()
    assert not _spans._dropped()  # left: no trace at all
    with _spans.task_context(sampled):
        assert not _spans._dropped()  # a sampled stored context entered is not dropped


def test_a_consumed_message_is_not_kept_but_a_tasks_stored_context_is() -> None:
    """A service sees each message's context once: keeping it would only crowd the cache."""
    message = QueueMessage(type="work", data={})
    fresh = {"traceparent": f"00-{'1' * 32}-{SPAN}-00"}
    _spans._parsed.clear()
    with _spans.consuming(message, "work", system="rabbitmq", destination="q", headers=fresh):
        assert _spans._dropped()
    assert _spans._parsed == {}
    with _spans.task_context(fresh):
        pass
    assert list(_spans._parsed) == [(fresh["traceparent"], None)]
