"""An LLM that needs no network and no API key, so the demo and tests run on a fresh machine.

`OfflineLLM` does not reason. It picks a tool by matching the last user message against tool
names and descriptions, calls it with arguments built from the tool's JSON schema, and once the
tool's result is in the conversation it answers with that result verbatim. That is enough for
`FunctionAgent` and for an orchestrator choosing between services to run end to end.

Tool calls are `ToolCallBlock`s in the assistant message's blocks, as llama-index 0.14 does it,
so they survive the JSON round trip the project uses to store chat histories.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from llama_agents.errors import LLMResponseError

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

logger = logging.getLogger("llama_agents.llms")

#: Whether this process already said it uses the offline LLM.
_announced = False

OFFLINE_MODEL_NAME = "offline"

_ANNOUNCEMENT = (
    "Using the offline LLM (llama_agents.llms.OfflineLLM) because neither OPENAI_API_KEY nor "
    "LLAMA_AGENTS_LLM_BASE_URL is set: agents pick tools by matching words against tool names "
    "and descriptions, and answer with the tool output. To use a real model, set "
    "OPENAI_API_KEY, or set LLAMA_AGENTS_LLM_BASE_URL and LLAMA_AGENTS_LLM_MODEL for an "
    "OpenAI-compatible server (vLLM, Ollama, llama.cpp server)."
)

# Words that carry no meaning for picking a tool: English function words plus the boilerplate
# every tool description shares ("Useful for getting ...", "Returns ..."), which would
# otherwise make unrelated tools tie.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not of off on once only or other our ours ourselves out
    over own please same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves
    tell give show know want need let
    useful use used using tool tools function get gets getting got return returns returned
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[a-z0-9]+")
_STREAM_CHUNKS = 8


def _normalise(word: str) -> str:
    """Fold simple plurals so "facts" matches "fact" and "queries" matches "query"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def keywords(text: str) -> set[str]:
    """The meaningful, normalised words of `text` (underscores split words, as in tool names)."""
    words = _WORD.findall(text.lower().replace("_", " "))
    return {_normalise(w) for w in words if w not in _STOPWORDS}


def match_tool(query: str, tools: Sequence[BaseTool]) -> BaseTool | None:
    """The tool whose name and description share the most keywords with `query`.

    Ties go to the first tool, so the caller's tool order is the tie-break; no shared keyword
    at all means no tool, so the LLM answers instead of calling something unrelated.
    """
    wanted = keywords(query)
    best: BaseTool | None = None
    best_score = 0
    for tool in tools:
        meta = tool.metadata
        score = len(wanted & keywords(f"{meta.name or ''} {meta.description}"))
        if score > best_score:
            best, best_score = tool, score
    return best


def _empty_value(schema: dict[str, Any], text: str) -> Any:
    """A value for one required parameter: the user's text for strings, else an empty value."""
    types: list[Any] = []
    raw_type = schema.get("type")
    if isinstance(raw_type, list):
        types.extend(raw_type)
    elif raw_type is not None:
        types.append(raw_type)
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(option, dict) and "type" in option:
            types.append(option["type"])
    if "string" in types:
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    empties: dict[str, Any] = {
        "integer": 0,
        "number": 0,
        "boolean": False,
        "array": [],
        "object": {},
        "null": None,
    }
    for kind in types:
        if kind in empties:
            return empties[kind]
    return {} if "$ref" in schema else None


def build_tool_kwargs(tool: BaseTool, text: str) -> dict[str, Any]:
    """Arguments for `tool` from its JSON schema: every required parameter gets a value."""
    params = tool.metadata.get_parameters_dict()
    properties: dict[str, Any] = params.get("properties") or {}
    required: list[str] = params.get("required") or []
    return {name: _empty_value(properties.get(name) or {}, text) for name in required}


def _text_of(message: ChatMessage) -> str:
    """The text content of a message; tool outputs and user questions are text blocks."""
    return message.content or ""


def _tool_call_id(tool_name: str, kwargs: dict[str, Any], position: int) -> str:
    """A deterministic id, unique within one conversation, so reruns give identical histories."""
    digest = hashlib.sha256(
        json.dumps([tool_name, kwargs, position], sort_keys=True, default=str).encode()
    ).hexdigest()
    return f"call_offline_{digest[:16]}"


def _forced_tool(
    tools: Sequence[BaseTool], tool_choice: Any, tool_required: bool
) -> tuple[bool, BaseTool | None]:
    """Honour an explicit tool choice: (decided, tool). Undecided means match by keywords."""
    if tool_choice == "none":
        return True, None
    name: str | None = None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "required", "any"):
        name = tool_choice
    elif isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
    if name is not None:
        for tool in tools:
            if tool.metadata.name == name:
                return True, tool
    if tool_required or tool_choice in ("required", "any"):
        return False, tools[0] if tools else None
    return False, None


class OfflineLLM(FunctionCallingLLM):
    """A deterministic, network-free function-calling LLM for demos and tests.

    It is a real llama-index LLM, so `FunctionAgent(tools=..., llm=OfflineLLM())` works
    (streaming or not), and so does an orchestrator calling `achat_with_tools` and
    `get_tool_calls_from_response`.
    """

    model: str = Field(default=OFFLINE_MODEL_NAME, description="Reported model name.")
    context_window: int = Field(
        default=128_000, description="Reported context window; nothing is ever truncated."
    )

    @classmethod
    def class_name(cls) -> str:
        """The name llama-index serialises this LLM under."""
        return "OfflineLLM"

    @property
    def is_offline(self) -> bool:
        """Always True: lets callers (the CLI, the demo) say no real model is answering."""
        return True

    @property
    def metadata(self) -> LLMMetadata:
        """A chat model that calls functions, so FunctionAgent accepts it."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=1024,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    # -- the decision -------------------------------------------------------------------------

    def _announce(self) -> None:
        """Warn once per process, so nobody mistakes the canned answers for a real model."""
        global _announced
        if not _announced:
            _announced = True
            logger.warning(_ANNOUNCEMENT)

    def _respond(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[BaseTool] | None = None,
        tool_choice: Any = None,
        tool_required: bool = False,
    ) -> ChatMessage:
        """The whole policy: answer from tool results, else call the best tool, else say so."""
        self._announce()
        last_user = -1
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == MessageRole.USER:
                last_user = index
                break
        question = _text_of(messages[last_user]) if last_user >= 0 else ""

        results = [_text_of(m) for m in messages[last_user + 1 :] if m.role == MessageRole.TOOL]
        if results:
            answer = "\n".join(r for r in results if r) or "The tool returned no output."
            return ChatMessage(role=MessageRole.ASSISTANT, content=answer)

        tools = tools or []
        decided, tool = _forced_tool(tools, tool_choice, tool_required)
        if tool is None and not decided:
            tool = match_tool(question, tools)
        if tool is None:
            return ChatMessage(role=MessageRole.ASSISTANT, content=self._no_match(question))

        name = tool.metadata.get_name()
        kwargs = build_tool_kwargs(tool, question)
        call = ToolCallBlock(
            tool_call_id=_tool_call_id(name, kwargs, len(messages)),
            tool_name=name,
            tool_kwargs=kwargs,
        )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])

    @staticmethod
    def _no_match(question: str) -> str:
        """The plain answer when no tool fits: says what answered and why it cannot help."""
        shown = " ".join(question.split())
        if len(shown) > 200:
            shown = shown[:197] + "..."
        return (
            "I am the offline LLM (no OPENAI_API_KEY or LLAMA_AGENTS_LLM_BASE_URL set) and "
            f"could not match a tool to the question: {shown!r}."
        )

    @staticmethod
    def _split(text: str) -> list[str]:
        """A few deltas for streaming, so stream consumers see more than one event."""
        pieces = re.findall(r"\s*\S+\s*", text) or [text]
        size = max(1, -(-len(pieces) // _STREAM_CHUNKS))
        return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]

    def _stream(self, message: ChatMessage) -> list[ChatResponse]:
        """Streaming chunks with cumulative messages; a tool call arrives whole in one chunk."""
        if any(isinstance(b, ToolCallBlock) for b in message.blocks):
            return [ChatResponse(message=message, delta="")]
        chunks: list[ChatResponse] = []
        so_far = ""
        for delta in self._split(message.content or ""):
            so_far += delta
            chunks.append(
                ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far), delta=delta
                )
            )
        # The last chunk carries the exact final message, whatever the splitting did.
        chunks[-1] = ChatResponse(message=message, delta=chunks[-1].delta)
        return chunks

    # -- chat ---------------------------------------------------------------------------------

    def _reply(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatMessage:
        """`_respond` with the tool arguments `_prepare_chat_with_tools` put in kwargs."""
        return self._respond(
            messages,
            kwargs.get("tools"),
            kwargs.get("tool_choice"),
            bool(kwargs.get("tool_required", False)),
        )

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer, or call a tool when `tools` were passed (via `chat_with_tools`)."""
        message = self._reply(messages, kwargs)
        return ChatResponse(message=message, delta=message.content or "")

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Same as `chat`: nothing here waits on I/O."""
        message = self._reply(messages, kwargs)
        return ChatResponse(message=message, delta=message.content or "")

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """`chat`, delivered as a few chunks."""
        chunks = self._stream(self._reply(messages, kwargs))

        def gen() -> Generator[ChatResponse, None, None]:
            yield from chunks

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """`chat`, delivered as a few chunks to an async consumer."""
        chunks = self._stream(self._reply(messages, kwargs))

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            for chunk in chunks:
                yield chunk

        return gen()

    # -- complete -----------------------------------------------------------------------------

    def _complete_text(self, prompt: str) -> str:
        """A completion has no tools, so it is the plain no-match answer."""
        return _text_of(self._respond([ChatMessage(role=MessageRole.USER, content=prompt)]))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt with the deterministic offline answer."""
        return CompletionResponse(text=self._complete_text(prompt))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Same as `complete`: nothing here waits on I/O."""
        return CompletionResponse(text=self._complete_text(prompt))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """`complete`, delivered as a few chunks."""
        text = self._complete_text(prompt)

        def gen() -> Generator[CompletionResponse, None, None]:
            so_far = ""
            for delta in self._split(text):
                so_far += delta
                yield CompletionResponse(text=so_far, delta=delta)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """`complete`, delivered as a few chunks to an async consumer."""
        text = self._complete_text(prompt)

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            so_far = ""
            for delta in self._split(text):
                so_far += delta
                yield CompletionResponse(text=so_far, delta=delta)

        return gen()

    # -- tools --------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Pass the tools themselves to `chat`: it needs names, descriptions and schemas."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": list(tools),
            "tool_choice": tool_choice,
            "tool_required": tool_required,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response: its `ToolCallBlock`s.

        Also reads OpenAI-style `additional_kwargs["tool_calls"]` dicts, which is what such
        calls look like after a JSON round trip of a history written by another LLM.
        """
        selections: list[ToolSelection] = []
        for block in response.message.blocks:
            if isinstance(block, ToolCallBlock):
                selections.append(
                    ToolSelection(
                        tool_id=block.tool_call_id or "",
                        tool_name=block.tool_name,
                        tool_kwargs=_as_kwargs(block.tool_kwargs),
                    )
                )
        if not selections:
            for raw in response.message.additional_kwargs.get("tool_calls") or []:
                if isinstance(raw, dict) and isinstance(raw.get("function"), dict):
                    function = raw["function"]
                    selections.append(
                        ToolSelection(
                            tool_id=str(raw.get("id") or ""),
                            tool_name=str(function.get("name") or ""),
                            tool_kwargs=_as_kwargs(function.get("arguments")),
                        )
                    )
        if not selections and error_on_no_tool_call:
            raise LLMResponseError("Expected at least one tool call, but got 0 tool calls.")
        return selections


def _as_kwargs(raw: Any) -> dict[str, Any]:
    """Tool arguments as a dict, whether stored as a dict or as a JSON string."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


__all__ = ["OfflineLLM", "build_tool_kwargs", "keywords", "match_tool"]
