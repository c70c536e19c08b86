"""llama-index's own instrumentation, bridged into OpenTelemetry spans.

llama-index opens a span on its root dispatcher for every instrumented call (an LLM's
`achat`, a tool call, a workflow step) and emits events inside them. One span handler makes
each an OpenTelemetry span: under its llama-index parent's span when that parent was bridged,
else under the current OpenTelemetry span (a service's step, an orchestrator's decision). One
event handler names the model, the tool and the tokens on the spans the events belong to.
Message contents are never recorded: prompts and answers may hold anything.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.agent import AgentToolCallEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools import BaseTool
from llama_index_instrumentation import get_dispatcher
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from llama_agents.metrics.llm import usage_of

_tracer = trace.get_tracer("llama_agents.llama_index")
_installed = False
_install_lock = threading.Lock()


class _Bridged(BaseSpan):
    """A llama-index span and the OpenTelemetry span standing for it."""

    otel: Any = None


def _span_name(id_: str) -> str:
    # llama-index names its spans `<Class.method>-<uuid4>`.
    return id_.partition("-")[0] or id_


class OpenTelemetrySpanHandler(BaseSpanHandler[_Bridged]):
    @classmethod
    def class_name(cls) -> str:
        return "LlamaAgentsOpenTelemetrySpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> _Bridged | None:
        parent = self.open_spans.get(parent_span_id) if parent_span_id else None
        under: Span = parent.otel if parent is not None else trace.get_current_span()
        under_context = under.get_span_context()
        if under_context.is_valid and not under_context.trace_flags.sampled:
            # Its trace was not sampled: nothing under it is recorded either, so no span
            # (an agent's run opens dozens; their children fall back here too).
            return None
        context = trace.set_span_in_context(parent.otel) if parent is not None else None
        span = _tracer.start_span(_span_name(id_), context=context)
        if span.is_recording():
            span.set_attribute("llama_index.span_id", id_)
            if isinstance(instance, BaseTool):
                # A workflow agent emits no tool event: the tool's own call names it.
                span.set_attribute("gen_ai.operation.name", "execute_tool")
                span.set_attribute("gen_ai.tool.name", instance.metadata.get_name())
        return _Bridged(id_=id_, parent_id=parent_span_id, otel=span)

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> _Bridged | None:
        bridged = self.open_spans.get(id_)
        if bridged is not None:
            bridged.otel.end()
        return bridged

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> _Bridged | None:
        bridged = self.open_spans.get(id_)
        if bridged is not None:
            span: Span = bridged.otel
            if err is not None and span.is_recording():
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))
            span.end()
        return bridged


class OpenTelemetryEventHandler(BaseEventHandler):
    """Puts what llama-index's LLM and tool events say on the span they happened in."""

    spans: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "LlamaAgentsOpenTelemetryEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if not isinstance(
            event,
            LLMChatStartEvent
            | LLMCompletionStartEvent
            | LLMChatEndEvent
            | LLMCompletionEndEvent
            | AgentToolCallEvent,
        ):
            return
        bridged = self.spans.open_spans.get(event.span_id) if event.span_id else None
        if bridged is None or not bridged.otel.is_recording():
            return
        span: Span = bridged.otel
        if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
            span.set_attribute(
                "gen_ai.operation.name",
                "chat" if isinstance(event, LLMChatStartEvent) else "text_completion",
            )
            model = event.model_dict.get("model") or event.model_dict.get("model_name")
            if isinstance(model, str):
                span.set_attribute("gen_ai.request.model", model)
            provider = event.model_dict.get("class_name")
            if isinstance(provider, str):
                span.set_attribute("llama_index.llm", provider)
        elif isinstance(event, AgentToolCallEvent):
            span.set_attribute("gen_ai.tool.name", event.tool.name)
        else:
            usage = usage_of(event.response)
            if usage is not None:
                model, prompt, completion = usage
                span.set_attribute("gen_ai.response.model", model)
                span.set_attribute("gen_ai.usage.input_tokens", prompt)
                span.set_attribute("gen_ai.usage.output_tokens", completion)


def install() -> None:
    """Add the bridge to llama-index's root dispatcher (once per process)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        dispatcher = get_dispatcher()
        spans = OpenTelemetrySpanHandler()
        dispatcher.add_span_handler(spans)
        events = OpenTelemetryEventHandler()
        events.spans = spans
        dispatcher.add_event_handler(events)
        _installed = True
