"""A scripted, OpenAI-compatible chat server, so tests drive the real OpenAI client offline.

Tests never talk to a real LLM. Instead they start `ScriptedLLMServer`, point
`llama_index.llms.openai.OpenAI` at it (`server.llm()`), and decide every reply with a
`respond(request) -> Reply` function — usually a `RuleBook` — that looks at the request
instead of at a fixed sequence, so concurrent agents can call it in any order.

    server.respond = RuleBook(
        [
            (when_tool_offered("lookup") & when_no_tool_result(), call("lookup", {"q": "x"})),
            (when_tool_result("lookup"), answer_with_tool_results()),
        ],
        default=Text("I don't know"),
    )

`call`, `answer` and `answer_with_tool_results` reply in the dialect of the request:
OpenAI `tool_calls` for function-calling agents, `Thought:/Action:/Answer:` text for ReAct.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from llama_index.llms.openai import OpenAI

from llama_agents._serving import HttpServer

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_THOUGHT = "I need to use a tool to help me answer the question."
ANSWER_THOUGHT = "I can answer without using any more tools."

# User messages that a llama-index agent writes itself (ReAct observations and retry nudges);
# they are not the human's question, so they do not start a new turn.
_AGENT_WRITTEN_USER_PREFIXES = (
    "Observation:",
    "Error while parsing the output",
    "FAILURE: Your previous response was empty",
)
_REACT_TOOL_NAME = re.compile(r"^> Tool Name: (.+?)\s*$", re.MULTILINE)
_REACT_ACTION = re.compile(r"^\s*Action: ([^\n\(\) ]+)", re.MULTILINE)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Call:
    """One tool call the scripted model makes."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Text:
    """A plain assistant message (`finish_reason="stop"`)."""

    content: str


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message asking for tool calls (`finish_reason="tool_calls"`)."""

    calls: Sequence[Call]
    content: str = ""


@dataclass(frozen=True)
class Fail:
    """An HTTP error with an OpenAI-style error body, to test how callers handle failures."""

    status: int = 500
    message: str = "scripted failure"
    type: str = "server_error"


Reply: TypeAlias = Text | ToolCalls | Fail
ReplyFactory: TypeAlias = Callable[["ChatRequest"], Reply]
Responder: TypeAlias = Callable[["ChatRequest"], Reply | Awaitable[Reply]]


def react_action(
    tool: str, arguments: dict[str, Any] | None = None, *, thought: str = DEFAULT_THOUGHT
) -> Text:
    """ReAct text that `ReActOutputParser` parses as a tool call."""
    return Text(f"Thought: {thought}\nAction: {tool}\nAction Input: {json.dumps(arguments or {})}")


def react_answer(text: str, *, thought: str = ANSWER_THOUGHT) -> Text:
    """ReAct text that `ReActOutputParser` parses as the final answer."""
    return Text(f"Thought: {thought}\nAnswer: {text}")


# --------------------------------------------------------------------------- requests


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string, a list of parts or null."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") == "text"
    )


def _is_agent_written(message: dict[str, Any]) -> bool:
    return message.get("role") == "user" and message_text(message).lstrip().startswith(
        _AGENT_WRITTEN_USER_PREFIXES
    )


@dataclass
class ChatRequest:
    """One parsed `POST /v1/chat/completions` body, with accessors rules need.

    The *current turn* is everything after the last message the human wrote (ReAct
    observations and agent retry nudges are user messages too, but do not count).
    """

    body: dict[str, Any]
    number: int = 0  # 1-based arrival order on this server

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        """The `function` objects of the `tools` API parameter (name, description, parameters)."""
        return [
            tool["function"]
            for tool in self.body.get("tools") or []
            if tool.get("type") == "function" and "function" in tool
        ]

    @property
    def tools(self) -> list[str]:
        """Tool names offered through the `tools` API parameter (function calling)."""
        return [schema["name"] for schema in self.tool_schemas]

    @property
    def system_text(self) -> str:
        return "\n".join(message_text(m) for m in self.messages if m.get("role") == "system")

    @property
    def last_message_role(self) -> str | None:
        return self.messages[-1].get("role") if self.messages else None

    @property
    def last_message_text(self) -> str:
        return message_text(self.messages[-1]) if self.messages else ""

    def _turn_start(self) -> int:
        messages = self.messages
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].get("role") == "user" and not _is_agent_written(messages[index]):
                return index
        return -1

    @property
    def last_user_text(self) -> str:
        """What the human last asked (skips ReAct observations and retry nudges)."""
        start = self._turn_start()
        return message_text(self.messages[start]) if start >= 0 else ""

    @property
    def turn(self) -> list[dict[str, Any]]:
        """Messages after the human's last message: the agent's work so far."""
        return self.messages[self._turn_start() + 1 :]

    @property
    def tool_calls_made(self) -> list[Call]:
        """Tool calls the assistant already made in this turn (function calling)."""
        calls = []
        for message in self.turn:
            for tool_call in message.get("tool_calls") or []:
                function = tool_call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except json.JSONDecodeError:
                    arguments = {}
                calls.append(Call(function.get("name", ""), arguments))
        return calls

    @property
    def tool_results(self) -> list[str]:
        """Contents of `role=tool` messages in this turn (function calling)."""
        return [message_text(m) for m in self.turn if m.get("role") == "tool"]

    @property
    def is_react(self) -> bool:
        """True for ReActAgent prompts: tools described in the system text, not the API."""
        system = self.system_text
        return not self.tools and "Action Input:" in system and "Observation:" in system

    @property
    def react_tools(self) -> list[str]:
        """Tool names listed in a ReAct system prompt (`> Tool Name: ...`)."""
        return _REACT_TOOL_NAME.findall(self.system_text) if self.is_react else []

    @property
    def observations(self) -> list[str]:
        """Tool outputs fed back to a ReAct agent in this turn, without `Observation: `."""
        return [
            message_text(m).lstrip().removeprefix("Observation:").strip()
            for m in self.turn
            if m.get("role") == "user" and message_text(m).lstrip().startswith("Observation:")
        ]

    @property
    def results(self) -> list[str]:
        """Tool outputs in this turn, whichever dialect the agent speaks."""
        return self.tool_results + self.observations

    @property
    def offered_tools(self) -> list[str]:
        """Tool names the caller offers, whichever dialect it speaks."""
        return self.tools or self.react_tools

    def offers(self, tool: str) -> bool:
        return tool in self.offered_tools

    def results_from(self, tool: str) -> list[str]:
        """Outputs of calls to `tool` in this turn (matched by call id, or ReAct `Action:`)."""
        names_by_id: dict[str, str] = {}
        pending_action: str | None = None
        found = []
        for message in self.turn:
            role = message.get("role")
            for tool_call in message.get("tool_calls") or []:
                names_by_id[tool_call.get("id", "")] = (tool_call.get("function") or {}).get(
                    "name", ""
                )
            if role == "assistant":
                actions = _REACT_ACTION.findall(message_text(message))
                pending_action = actions[-1] if actions else None
            elif role == "tool" and names_by_id.get(message.get("tool_call_id", "")) == tool:
                found.append(message_text(message))
            elif role == "user" and message_text(message).lstrip().startswith("Observation:"):
                if pending_action == tool:
                    found.append(
                        message_text(message).lstrip().removeprefix("Observation:").strip()
                    )
                pending_action = None
        return found


# --------------------------------------------------------------------------- predicates


class When:
    """A named predicate over requests; combine with `&`, `|` and `~`."""

    def __init__(self, test: Callable[[ChatRequest], bool], description: str = "when(...)") -> None:
        self._test = test
        self.description = description

    def __call__(self, request: ChatRequest) -> bool:
        return bool(self._test(request))

    def __and__(self, other: When) -> When:
        return When(lambda r: self(r) and other(r), f"({self} & {other})")

    def __or__(self, other: When) -> When:
        return When(lambda r: self(r) or other(r), f"({self} | {other})")

    def __invert__(self) -> When:
        return When(lambda r: not self(r), f"~{self}")

    def __repr__(self) -> str:
        return self.description


def when(test: Callable[[ChatRequest], bool], description: str = "when(...)") -> When:
    """Any custom condition, made composable."""
    return When(test, description)


def always() -> When:
    return When(lambda r: True, "always()")


def when_tool_offered(tool: str) -> When:
    """The caller offers `tool` (API `tools` or ReAct system prompt)."""
    return When(lambda r: r.offers(tool), f"when_tool_offered({tool!r})")


def when_tool_result(tool: str | None = None) -> When:
    """This turn already holds a tool output (from `tool`, if given)."""
    if tool is None:
        return When(lambda r: bool(r.results), "when_tool_result()")
    return When(lambda r: bool(r.results_from(tool)), f"when_tool_result({tool!r})")


def when_no_tool_result() -> When:
    """No tool has answered yet in this turn: the agent's first step."""
    return When(lambda r: not r.results, "when_no_tool_result()")


def when_user_says(text: str) -> When:
    """The human's last message contains `text` (case-insensitive)."""
    return When(lambda r: text.lower() in r.last_user_text.lower(), f"when_user_says({text!r})")


def when_system_says(text: str) -> When:
    """The system prompt contains `text` (case-insensitive)."""
    return When(lambda r: text.lower() in r.system_text.lower(), f"when_system_says({text!r})")


def when_streaming() -> When:
    return When(lambda r: r.stream, "when_streaming()")


def when_react() -> When:
    """The caller is a ReActAgent (text protocol, no API tools)."""
    return When(lambda r: r.is_react, "when_react()")


# --------------------------------------------------------------------------- reply factories


def call(
    tool: str, arguments: dict[str, Any] | None = None, *, thought: str = DEFAULT_THOUGHT
) -> ReplyFactory:
    """Call `tool`: as `tool_calls` for function calling, as `Action:` text for ReAct."""

    def reply(request: ChatRequest) -> Reply:
        if request.is_react:
            return react_action(tool, arguments, thought=thought)
        return ToolCalls([Call(tool, dict(arguments or {}))])

    return reply


def answer(text: str, *, thought: str = ANSWER_THOUGHT) -> ReplyFactory:
    """Answer `text`: plain for function calling, `Thought:/Answer:` for ReAct."""

    def reply(request: ChatRequest) -> Reply:
        return react_answer(text, thought=thought) if request.is_react else Text(text)

    return reply


def answer_with_tool_results(
    template: str = "{results}", *, tool: str | None = None, separator: str = "\n"
) -> ReplyFactory:
    """Answer with this turn's tool outputs (only `tool`'s, if given) put into `template`.

    Pass `tool` under AgentWorkflow: a handoff's output is a tool result of the turn too.
    """

    def reply(request: ChatRequest) -> Reply:
        results = request.results if tool is None else request.results_from(tool)
        return answer(template.format(results=separator.join(results)))(request)

    return reply


Rule: TypeAlias = tuple[Callable[[ChatRequest], bool], Reply | ReplyFactory]


class RuleBook:
    """First matching rule wins; order-independent, so concurrent callers are fine."""

    def __init__(
        self, rules: Sequence[Rule] = (), default: Reply | ReplyFactory | None = None
    ) -> None:
        self.rules: list[Rule] = list(rules)
        self.default = default

    def add(self, predicate: Callable[[ChatRequest], bool], reply: Reply | ReplyFactory) -> None:
        self.rules.append((predicate, reply))

    def __call__(self, request: ChatRequest) -> Reply:
        for predicate, reply in self.rules:
            if predicate(request):
                return _resolve(reply, request)
        if self.default is not None:
            return _resolve(self.default, request)
        return Fail(
            500,
            f"scripted LLM: no rule matched request #{request.number} "
            f"(last {request.last_message_role}: {request.last_message_text[:200]!r})",
        )


def _resolve(reply: Reply | ReplyFactory, request: ChatRequest) -> Reply:
    return reply if isinstance(reply, Text | ToolCalls | Fail) else reply(request)


# --------------------------------------------------------------------------- server


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Split text into word-sized stream deltas."""
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _halves(text: str) -> list[str]:
    """Split text in two, so clients must join argument deltas."""
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


class ScriptedLLMServer:
    """An OpenAI-compatible HTTP server whose replies come from `respond(request)`."""

    def __init__(self, respond: Responder | None = None, *, model: str = DEFAULT_MODEL) -> None:
        self.respond: Responder = respond or RuleBook()
        self.model = model
        self.requests: list[ChatRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised by `respond`
        self._arrived = asyncio.Condition()
        self._call_ids = itertools.count(1)
        self._completion_ids = itertools.count(1)
        self._http: HttpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._clients: list[httpx.AsyncClient] = []
        self.port = 0
        self.app = self._build_app()

    # ---- lifecycle

    async def start(self) -> None:
        self._http = HttpServer(self.app, host="127.0.0.1", port=0)
        self._task = asyncio.create_task(self._http.serve())
        self.port = await self._http.wait_started()

    async def stop(self) -> None:
        # Close the clients `llm()` made while their loop runs; left to the garbage collector
        # they would try to close on a later test's (or a closed) event loop.
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        if self._http is not None and self._task is not None:
            self._http.stop()
            await self._task
        self._http = self._task = None

    async def __aenter__(self) -> ScriptedLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- what tests use

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def llm(self, **kwargs: Any) -> OpenAI:
        """The real llama-index OpenAI client, aimed at this server and never retrying."""
        if "async_http_client" not in kwargs:
            kwargs["async_http_client"] = httpx.AsyncClient()
            self._clients.append(kwargs["async_http_client"])
        settings: dict[str, Any] = {
            "model": self.model,
            "api_key": "sk-test",
            "api_base": self.base_url,
            "max_retries": 0,
            "timeout": 10,
        }
        return OpenAI(**{**settings, **kwargs})

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ChatRequest]:
        """Wait (on arrivals, not the clock) until `count` chat requests came in."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    # ---- HTTP

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}
            return {"object": "list", "data": [entry]}

        @app.post("/v1/chat/completions")
        async def chat_completions(http_request: Request) -> Response:
            request = ChatRequest(await http_request.json())
            async with self._arrived:
                self.requests.append(request)
                request.number = len(self.requests)
                self._arrived.notify_all()
            try:
                reply = self.respond(request)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception as error:
                self.errors.append(error)
                reply = Fail(500, f"scripted LLM: respond raised {error!r}")
            return self._render(request, reply)

        return app

    def _render(self, request: ChatRequest, reply: Reply) -> Response:
        if isinstance(reply, Fail):
            error = {"message": reply.message, "type": reply.type, "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=reply.status)
        calls: list[tuple[str, Call]] = []
        if isinstance(reply, ToolCalls):
            calls = [(f"call_{next(self._call_ids)}", c) for c in reply.calls]
        content = reply.content
        completion_id = f"chatcmpl-{next(self._completion_ids)}"
        if request.stream:
            return StreamingResponse(
                self._sse(request, completion_id, content, calls),
                media_type="text/event-stream",
            )
        return JSONResponse(self._completion(request, completion_id, content, calls))

    def _usage(
        self, request: ChatRequest, content: str, calls: list[tuple[str, Call]]
    ) -> dict[str, int]:
        prompt = sum(_words(message_text(m)) for m in request.messages)
        completion = _words(content) + sum(_words(json.dumps(c.arguments)) for _, c in calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(
        self, request: ChatRequest, completion_id: str, content: str, calls: list[tuple[str, Call]]
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for call_id, c in calls
            ]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": self._usage(request, content, calls),
        }

    async def _sse(
        self, request: ChatRequest, completion_id: str, content: str, calls: list[tuple[str, Call]]
    ) -> AsyncIterator[str]:
        """The chunk sequence OpenAI streams: role, text deltas, one tool delta per chunk."""
        for chunk in self._chunks(request, completion_id, content, calls):
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    def _chunks(
        self, request: ChatRequest, completion_id: str, content: str, calls: list[tuple[str, Call]]
    ) -> Iterator[dict[str, Any]]:
        created = int(time.time())
        model = request.model or self.model

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        if content or not calls:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in _pieces(content) if content else []:
                yield chunk({"content": piece})
        for index, (call_id, c) in enumerate(calls):
            head: dict[str, Any] = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }
            if index == 0 and not content:
                yield chunk({"role": "assistant", "content": None, "tool_calls": [head]})
            else:
                yield chunk({"tool_calls": [head]})
            for piece in _halves(json.dumps(c.arguments)):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if calls else "stop")
        if (request.body.get("stream_options") or {}).get("include_usage"):
            final = chunk({})
            final["choices"] = []
            final["usage"] = self._usage(request, content, calls)
            yield final


@pytest.fixture(name="scripted_llm")
async def scripted_llm_fixture() -> AsyncIterator[ScriptedLLMServer]:
    """A running scripted LLM server; set `.respond` (e.g. a RuleBook) before using `.llm()`.

    Import `scripted_llm_fixture` (ruff flags a test parameter that shadows an imported
    `scripted_llm` as F811); `scripted_llm` is the same fixture under its pytest name.
    """
    async with ScriptedLLMServer() as server:
        yield server


scripted_llm = scripted_llm_fixture
