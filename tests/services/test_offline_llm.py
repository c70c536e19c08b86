"""The offline LLM drives real llama-index agents without a network, and the factory picks
the LLM the environment asks for."""

from __future__ import annotations

import logging

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import ChatResponse
from llama_index.core.tools import FunctionTool

from llama_agents.errors import ConfigurationError, LlamaAgentsError
from llama_agents.llms import OfflineLLM, default_llm, describe_llm

SECRET = "The secret fact is: A baby llama is called a 'Cria'."
DUMB = "The dumb fact is: llamas hum."
ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "LLAMA_AGENTS_LLM_BASE_URL",
    "LLAMA_AGENTS_LLM_MODEL",
)

# FunctionAgent's constructor (llama-index's workflows package) walks its pydantic attributes
# with inspect.getmembers, which trips pydantic's deprecation warnings; that is not our code.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20:inspect"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211:inspect"),
]

calls: list[str] = []


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    calls.append("secret")
    return SECRET


def get_a_dumb_fact() -> str:
    """Returns a random dumb fact."""
    calls.append("dumb")
    return DUMB


def _service_tool(name: str, description: str) -> FunctionTool:
    """A tool shaped like an agent service: one string parameter named `input`."""

    def run(input: str) -> str:
        return f"{name} ran on {input}"

    return FunctionTool.from_defaults(fn=run, name=name, description=description)


SERVICE_TOOLS = [
    _service_tool("secret_fact_agent", "Useful for getting the secret fact."),
    _service_tool("dumb_fact_agent", "Useful for getting random dumb facts."),
    _service_tool("finalize", "Finalize the task and return the result to the user."),
]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No LLM settings at all, whatever the developer's shell exports."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_answers_with_the_tool_output(streaming: bool) -> None:
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)],
        llm=OfflineLLM(),
        streaming=streaming,
    )
    response = await agent.run(user_msg="What is the secret fact?")
    assert SECRET in str(response)
    assert calls == ["secret"]


@pytest.mark.parametrize(
    ("question", "expected", "fact"),
    [
        ("What is the secret fact?", "secret", SECRET),
        ("Tell me a random dumb fact", "dumb", DUMB),
    ],
)
async def test_function_agent_picks_the_tool_by_description(
    question: str, expected: str, fact: str
) -> None:
    agent = FunctionAgent(
        tools=[
            FunctionTool.from_defaults(fn=get_the_secret_fact),
            FunctionTool.from_defaults(fn=get_a_dumb_fact),
        ],
        llm=OfflineLLM(),
    )
    response = await agent.run(user_msg=question)
    assert fact in str(response)
    assert calls == [expected]


async def test_picks_a_service_tool_with_the_question_as_input() -> None:
    llm = OfflineLLM()
    history = [ChatMessage(role=MessageRole.USER, content="What is the secret fact?")]
    response = await llm.achat_with_tools(
        SERVICE_TOOLS, chat_history=history, allow_parallel_tool_calls=False
    )
    selections = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
    assert len(selections) == 1
    assert selections[0].tool_name == "secret_fact_agent"
    assert selections[0].tool_kwargs == {"input": "What is the secret fact?"}
    assert selections[0].tool_id
    assert len(history) == 1, "the caller's history must not be mutated"


async def test_answers_plainly_once_a_tool_result_is_in() -> None:
    llm = OfflineLLM()
    history = [ChatMessage(role=MessageRole.USER, content="What is the secret fact?")]
    first = await llm.achat_with_tools(SERVICE_TOOLS, chat_history=history)
    (call,) = llm.get_tool_calls_from_response(first)
    history += [
        first.message,
        ChatMessage(
            role=MessageRole.TOOL, content=SECRET, additional_kwargs={"tool_call_id": call.tool_id}
        ),
    ]
    second = await llm.achat_with_tools(SERVICE_TOOLS, chat_history=history)
    assert llm.get_tool_calls_from_response(second, error_on_no_tool_call=False) == []
    assert second.message.content is not None
    assert SECRET in second.message.content
    with pytest.raises(ValueError):
        llm.get_tool_calls_from_response(second)


def test_no_matching_tool_gives_a_plain_offline_answer() -> None:
    llm = OfflineLLM()
    response = llm.chat_with_tools(SERVICE_TOOLS, user_msg="How tall is Everest?")
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    text = response.message.content or ""
    assert "offline" in text and "could not match a tool" in text
    assert llm.chat([ChatMessage(role=MessageRole.USER, content="hi")]).message.content
    assert "offline" in llm.complete("hi").text


async def test_streaming_and_completion_variants() -> None:
    llm = OfflineLLM()
    chunks = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content="hello there")]))
    assert chunks and "".join(c.delta or "" for c in chunks) == chunks[-1].message.content
    achunks = [c async for c in await llm.astream_complete("hello there")]
    assert "".join(c.delta or "" for c in achunks) == achunks[-1].text
    assert (await llm.acomplete("hello there")).text == achunks[-1].text
    stream = await llm.astream_chat_with_tools(SERVICE_TOOLS, user_msg="the secret fact")
    last = [c async for c in stream][-1]
    assert llm.get_tool_calls_from_response(last)[0].tool_name == "secret_fact_agent"


def test_tool_call_message_survives_a_json_round_trip() -> None:
    llm = OfflineLLM()
    response = llm.chat_with_tools(SERVICE_TOOLS, user_msg="What is the secret fact?")
    before = llm.get_tool_calls_from_response(response)
    restored = ChatMessage.model_validate(response.message.model_dump(mode="json"))
    assert isinstance(restored.blocks[0], ToolCallBlock)
    after = llm.get_tool_calls_from_response(ChatResponse(message=restored))
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in after] == [
        (s.tool_id, s.tool_name, s.tool_kwargs) for s in before
    ]


def test_tool_arguments_follow_the_schema() -> None:
    def lookup(query: str, limit: int, exact: bool, tags: list[str], note: str = "") -> str:
        """Look things up."""
        return query

    llm = OfflineLLM()
    tool = FunctionTool.from_defaults(fn=lookup)
    response = llm.chat_with_tools([tool], user_msg="lookup llamas")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_kwargs == {
        "query": "lookup llamas",
        "limit": 0,
        "exact": False,
        "tags": [],
    }


def test_warns_once_per_process(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_agents.llms import offline

    monkeypatch.setattr(offline, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="llama_agents.llms"):
        OfflineLLM().chat([ChatMessage(role=MessageRole.USER, content="one")])
        OfflineLLM().complete("two")
    warnings = [r for r in caplog.records if r.name == "llama_agents.llms"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "OPENAI_API_KEY" in warnings[0].getMessage()
    assert "LLAMA_AGENTS_LLM_BASE_URL" in warnings[0].getMessage()


def test_reports_itself_as_an_offline_function_calling_chat_model() -> None:
    llm = OfflineLLM()
    assert OfflineLLM.class_name() == "OfflineLLM"
    assert llm.is_offline is True
    assert llm.metadata.is_function_calling_model
    assert llm.metadata.is_chat_model
    assert llm.metadata.model_name == "offline"


def test_default_llm_is_offline_without_settings(clean_env: pytest.MonkeyPatch) -> None:
    llm = default_llm()
    assert isinstance(llm, OfflineLLM)
    assert describe_llm(llm).startswith("offline function-calling LLM")


def test_default_llm_is_openai_with_an_api_key(clean_env: pytest.MonkeyPatch) -> None:
    from llama_index.llms.openai import OpenAI

    clean_env.setenv("OPENAI_API_KEY", "sk-test")
    llm = default_llm()
    assert isinstance(llm, OpenAI)
    assert llm.model == "gpt-4o-mini"
    assert describe_llm(llm) == "OpenAI gpt-4o-mini"
    clean_env.setenv("LLAMA_AGENTS_LLM_MODEL", "gpt-4o")
    chosen = default_llm()
    assert isinstance(chosen, OpenAI)
    assert chosen.model == "gpt-4o"


@pytest.mark.parametrize("variable", ["LLAMA_AGENTS_LLM_BASE_URL", "OPENAI_BASE_URL"])
def test_default_llm_uses_an_openai_compatible_server(
    clean_env: pytest.MonkeyPatch, variable: str
) -> None:
    from llama_index.llms.openai import OpenAI

    clean_env.setenv(variable, "http://localhost:11434/v1")
    clean_env.setenv("LLAMA_AGENTS_LLM_MODEL", "llama3.1:8b")
    llm = default_llm()
    assert isinstance(llm, OpenAI)
    assert llm.api_base == "http://localhost:11434/v1"
    assert llm.model == "llama3.1:8b"
    assert llm.api_key == "not-needed"
    assert llm.metadata.is_function_calling_model and llm.metadata.is_chat_model
    assert describe_llm(llm) == (
        "OpenAI-compatible server at http://localhost:11434/v1 (model llama3.1:8b)"
    )


def test_a_base_url_without_a_model_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("LLAMA_AGENTS_LLM_BASE_URL", "http://localhost:8000/v1")
    with pytest.raises(ConfigurationError, match="LLAMA_AGENTS_LLM_MODEL") as info:
        default_llm()
    assert isinstance(info.value, LlamaAgentsError)
