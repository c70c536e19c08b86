"""The scripted LLM server speaks OpenAI well enough for the real client and real agents."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
import openai
import pytest
from llama_index.core.agent.workflow import (
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
)
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool

from tests.support.llm_server import (
    Call,
    ChatRequest,
    Fail,
    Reply,
    RuleBook,
    ScriptedLLMServer,
    Text,
    ToolCalls,
    answer,
    answer_with_tool_results,
    call,
    scripted_llm_fixture,  # noqa: F401
    when,
    when_no_tool_result,
    when_tool_offered,
    when_tool_result,
    when_user_says,
)

# llama-index's workflow engine inspects agents with `inspect.getmembers`, which trips
# pydantic's deprecated-attribute warnings: noise from the library, not from these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
    pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning"),
]

SECRET_FACT = "The secret fact is: A baby llama is called a 'Cria'."
WEATHER = "It is sunny in Lima."
DEADLINE = 10.0


class Tools:
    """Real tools that count their runs, so tests can tell a tool actually ran."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {"get_the_secret_fact": 0, "get_the_weather": 0}

    def get_the_secret_fact(self) -> str:
        """Returns the secret fact."""
        self.runs["get_the_secret_fact"] += 1
        return SECRET_FACT

    def get_the_weather(self, city: str) -> str:
        """Returns the weather in a city."""
        self.runs["get_the_weather"] += 1
        return f"It is sunny in {city}."

    def secret(self) -> FunctionTool:
        return FunctionTool.from_defaults(fn=self.get_the_secret_fact, name="get_the_secret_fact")

    def weather(self) -> FunctionTool:
        return FunctionTool.from_defaults(fn=self.get_the_weather, name="get_the_weather")


def agent_rules() -> RuleBook:
    """One rule book that drives FunctionAgent and ReActAgent alike."""
    return RuleBook(
        [
            (
                when_tool_offered("get_the_secret_fact")
                & when_user_says("secret")
                & when_no_tool_result(),
                call("get_the_secret_fact", {}),
            ),
            (
                when_tool_offered("get_the_weather")
                & when_user_says("weather")
                & when_no_tool_result(),
                call("get_the_weather", {"city": "Lima"}),
            ),
            (when_tool_result(), answer_with_tool_results()),
        ],
        default=answer("I don't know"),
    )


# --------------------------------------------------------------------------- the client


async def test_achat_returns_text_and_usage(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([(when_user_says("hello"), Text("Hi there!"))])

    response = await scripted_llm.llm().achat([ChatMessage(role="user", content="Hello?")])

    assert response.message.content == "Hi there!"
    assert response.additional_kwargs["total_tokens"] > 0
    [request] = scripted_llm.requests
    assert (request.number, request.stream, request.last_user_text) == (1, False, "Hello?")
    assert request.model == "gpt-4o-mini"


async def test_astream_chat_streams_deltas(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook(default=Text("one two three four"))

    stream = await scripted_llm.llm().astream_chat([ChatMessage(role="user", content="Count")])
    chunks = [chunk async for chunk in stream]

    assert len([c for c in chunks if c.delta]) == 4
    assert "".join(c.delta or "" for c in chunks) == "one two three four"
    assert chunks[-1].message.content == "one two three four"
    assert scripted_llm.requests[0].stream


async def test_include_usage_final_chunk_is_harmless(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook(default=Text("done"))
    llm = scripted_llm.llm(additional_kwargs={"stream_options": {"include_usage": True}})

    stream = await llm.astream_chat([ChatMessage(role="user", content="Go")])
    chunks = [chunk async for chunk in stream]

    assert chunks[-1].message.content == "done"
    assert chunks[-1].additional_kwargs["total_tokens"] > 0


@pytest.mark.parametrize("streaming", [False, True])
async def test_chat_with_tools_parses_tool_calls(
    scripted_llm: ScriptedLLMServer, streaming: bool
) -> None:
    scripted_llm.respond = RuleBook(
        [
            (
                when_tool_offered("get_the_weather"),
                ToolCalls([Call("get_the_weather", {"city": "Lima"}), Call("get_the_secret_fact")]),
            )
        ]
    )
    tools = Tools()
    llm = scripted_llm.llm()
    offered = [tools.weather(), tools.secret()]

    if streaming:
        stream = await llm.astream_chat_with_tools(
            offered, user_msg="Weather?", allow_parallel_tool_calls=True
        )
        response = [chunk async for chunk in stream][-1]
    else:
        response = await llm.achat_with_tools(
            offered, user_msg="Weather?", allow_parallel_tool_calls=True
        )
    selections = llm.get_tool_calls_from_response(response)

    assert [(s.tool_name, s.tool_kwargs) for s in selections] == [
        ("get_the_weather", {"city": "Lima"}),
        ("get_the_secret_fact", {}),
    ]
    assert [s.tool_id for s in selections] == ["call_1", "call_2"]
    [request] = scripted_llm.requests
    assert request.tools == ["get_the_weather", "get_the_secret_fact"]
    assert request.tool_schemas[0]["parameters"]["properties"]["city"]["type"] == "string"
    assert not request.is_react


# --------------------------------------------------------------------------- agents


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_uses_the_tool(
    scripted_llm: ScriptedLLMServer, streaming: bool
) -> None:
    scripted_llm.respond = agent_rules()
    tools = Tools()
    agent = FunctionAgent(tools=[tools.secret()], llm=scripted_llm.llm(), streaming=streaming)

    handler = agent.run(user_msg="What is the secret fact?")
    deltas = [ev.delta async for ev in handler.stream_events() if isinstance(ev, AgentStream)]
    result = await handler

    assert str(result) == SECRET_FACT
    assert tools.runs["get_the_secret_fact"] == 1
    assert (bool(deltas), scripted_llm.request_count) == (streaming, 2)
    first, second = scripted_llm.requests
    assert first.tools == ["get_the_secret_fact"] and first.results == []
    assert second.last_message_role == "tool"
    assert second.tool_calls_made == [Call("get_the_secret_fact", {})]
    assert second.results_from("get_the_secret_fact") == [SECRET_FACT]


@pytest.mark.parametrize("streaming", [False, True])
async def test_react_agent_uses_the_tool(scripted_llm: ScriptedLLMServer, streaming: bool) -> None:
    scripted_llm.respond = agent_rules()
    tools = Tools()
    agent = ReActAgent(tools=[tools.secret()], llm=scripted_llm.llm(), streaming=streaming)

    result = cast(AgentOutput, await agent.run(user_msg="What is the secret fact?"))

    assert result.response.content == SECRET_FACT
    assert tools.runs["get_the_secret_fact"] == 1
    first, second = scripted_llm.requests
    assert first.is_react and first.tools == [] and first.stream == streaming
    assert first.react_tools == ["get_the_secret_fact"]
    assert second.last_message_role == "user"  # ReAct observations come back as user text
    assert second.last_message_text == f"Observation: {SECRET_FACT}"
    assert second.last_user_text == "What is the secret fact?"
    assert second.observations == second.results_from("get_the_secret_fact") == [SECRET_FACT]


async def test_concurrent_agent_runs_get_their_own_answers(
    scripted_llm: ScriptedLLMServer,
) -> None:
    """Both first requests must be in flight at once before either gets its reply."""
    rules = agent_rules()
    both_asked = asyncio.Barrier(2)

    async def respond(request: ChatRequest) -> Reply:
        if not request.results:
            async with asyncio.timeout(DEADLINE):
                await both_asked.wait()
        return rules(request)

    scripted_llm.respond = respond
    tools = Tools()
    secret_agent = FunctionAgent(tools=[tools.secret()], llm=scripted_llm.llm())
    weather_agent = ReActAgent(tools=[tools.weather()], llm=scripted_llm.llm())

    secret, weather = await asyncio.gather(
        secret_agent.run(user_msg="What is the secret fact?"),
        weather_agent.run(user_msg="What is the weather?"),
    )

    assert (str(secret), str(weather)) == (SECRET_FACT, WEATHER)
    assert tools.runs == {"get_the_secret_fact": 1, "get_the_weather": 1}
    assert scripted_llm.request_count == 4


async def test_agent_workflow_hands_off_then_uses_the_tool(
    scripted_llm: ScriptedLLMServer,
) -> None:
    """After a handoff its output sits in the turn, so rules key on the specific tool."""
    fact = "get_the_secret_fact"
    scripted_llm.respond = RuleBook(
        [
            (when_tool_offered(fact) & ~when_tool_result(fact), call(fact, {})),
            (when_tool_result(fact), answer_with_tool_results(tool=fact)),
            (
                when_tool_offered("handoff"),
                call("handoff", {"to_agent": "fact_agent", "reason": "it knows secrets"}),
            ),
        ]
    )
    tools = Tools()
    workflow = AgentWorkflow(
        agents=[
            FunctionAgent(
                name="router",
                description="Routes questions.",
                llm=scripted_llm.llm(),
                can_handoff_to=["fact_agent"],
            ),
            FunctionAgent(
                name="fact_agent",
                description="Knows the secret fact.",
                tools=[tools.secret()],
                llm=scripted_llm.llm(),
                can_handoff_to=[],
            ),
        ],
        root_agent="router",
    )

    result = cast(AgentOutput, await workflow.run(user_msg="What is the secret fact?"))

    assert (str(result), result.current_agent_name) == (SECRET_FACT, "fact_agent")
    assert tools.runs["get_the_secret_fact"] == 1
    router, first, second = scripted_llm.requests
    assert (router.tools, first.tools) == (["handoff"], [fact])
    assert first.results_from("handoff") and not first.results_from(fact)
    assert second.results_from(fact) == [SECRET_FACT]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("streaming", [False, True])
async def test_fail_becomes_an_openai_error(
    scripted_llm: ScriptedLLMServer, streaming: bool
) -> None:
    scripted_llm.respond = RuleBook(
        [
            (when_user_says("busy"), Fail(429, "slow down", type="rate_limit_error")),
            (when(lambda r: True), Fail(503, "overloaded")),
        ]
    )
    llm = scripted_llm.llm()

    with pytest.raises(openai.RateLimitError, match="slow down") as caught:
        if streaming:  # the request goes out when the stream is first read
            stream = await llm.astream_chat([ChatMessage(role="user", content="Are you busy?")])
            await anext(stream)
        else:
            await llm.achat([ChatMessage(role="user", content="Are you busy?")])
    assert caught.value.status_code == 429
    with pytest.raises(openai.InternalServerError, match="overloaded"):
        await llm.achat([ChatMessage(role="user", content="Hi")])
    assert scripted_llm.request_count == 2  # max_retries=0: asked once each


async def test_unmatched_or_broken_rules_fail_loudly(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([(when_user_says("weather"), Text("ok"))])
    with pytest.raises(openai.InternalServerError, match="no rule matched request #1"):
        await scripted_llm.llm().achat([ChatMessage(role="user", content="Who are you?")])

    def broken(request: ChatRequest) -> Reply:
        raise RuntimeError("bug in the script")

    scripted_llm.respond = broken
    with pytest.raises(openai.InternalServerError, match="bug in the script"):
        await scripted_llm.llm().achat([ChatMessage(role="user", content="Hi")])
    assert [str(e) for e in scripted_llm.errors] == ["bug in the script"]


async def test_models_endpoint_and_waiting_for_requests(
    scripted_llm: ScriptedLLMServer,
) -> None:
    async with httpx.AsyncClient(base_url=scripted_llm.base_url) as client:
        models = (await client.get("/models")).json()
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini"]

    scripted_llm.respond = RuleBook(default=Text("ok"))
    waiter = asyncio.create_task(scripted_llm.wait_for_requests(1, timeout=DEADLINE))
    await scripted_llm.llm().achat([ChatMessage(role="user", content="Hi")])
    assert [r.last_user_text for r in await waiter] == ["Hi"]
