"""LLM tokens, where the LLM reports them, counted for whoever made the call.

llama-index announces every LLM call's end on its instrumentation dispatcher
(`LLMChatEndEvent`, `LLMCompletionEndEvent`). One handler, added to the root dispatcher once
per process, reads the usage the provider returned and adds it to the `TokenSink` of the
current context: a service sets its own while it handles a step, the control plane its
own while an orchestrator decides. Calls made outside both are not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
from llama_index_instrumentation import get_dispatcher


class TokenSink(Protocol):
    def add_tokens(self, model: str, prompt: int, completion: int) -> None: ...


#: Where the LLM calls of the current task (asyncio context) are counted.
current_sink: ContextVar[TokenSink | None] = ContextVar("llama_agents_token_sink", default=None)

_installed = False
_install_lock = threading.Lock()

#: Usage field names: OpenAI-style first, then Anthropic-style.
_PROMPT_KEYS = ("prompt_tokens", "input_tokens")
_COMPLETION_KEYS = ("completion_tokens", "output_tokens")


def _first(usage: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, int) and value >= 0:
            return value
    return 0


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if value is not None and hasattr(value, "model_dump"):
        dumped = value.model_dump()
        return dumped if isinstance(dumped, Mapping) else {}
    return {}


def usage_of(response: Any) -> tuple[str, int, int] | None:
    """(model, prompt tokens, completion tokens) a response reports, or None."""
    if response is None:
        return None
    extra = _as_mapping(getattr(response, "additional_kwargs", None))
    raw = getattr(response, "raw", None)
    raw_map = raw if isinstance(raw, Mapping) else {}
    usage: Mapping[str, Any] = extra
    if not any(k in extra for k in _PROMPT_KEYS + _COMPLETION_KEYS):
        usage = _as_mapping(raw_map.get("usage") if raw_map else getattr(raw, "usage", None))
    prompt, completion = _first(usage, _PROMPT_KEYS), _first(usage, _COMPLETION_KEYS)
    if not prompt and not completion:
        return None
    model = raw_map.get("model") if raw_map else getattr(raw, "model", None)
    return (model if isinstance(model, str) and model else "unknown"), prompt, completion


class _TokenHandler(BaseEventHandler):
    """Counts the tokens an ended LLM call reports, for the current context's sink."""

    @classmethod
    def class_name(cls) -> str:
        return "LlamaAgentsTokenHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if not isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent):
            return
        sink = current_sink.get()
        if sink is None:
            return
        usage = usage_of(event.response)
        if usage is not None:
            sink.add_tokens(*usage)


def install_token_handler() -> None:
    """Add the handler to llama-index's root dispatcher (once per process)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            get_dispatcher().add_event_handler(_TokenHandler())
            _installed = True
