"""AgentOrchestrator: an LLM routes by function calling (scripted OpenAI server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llama_agents import (
    AgentOrchestrator,
    ConfigurationError,
    OfflineLLM,
    QueueMessage,
    TaskDefinition,
    TaskFailedError,
    TaskResult,
)
from llama_agents.orchestrators.base import is_final
from llama_agents.orchestrators.service_tool import ServiceTool
from tests.support.llm_server import (
    Call,
    RuleBook,
    ScriptedLLMServer,
    ToolCalls,
    always,
    answer,
    answer_with_tool_results,
    call,
    when,
    when_tool_result,
    when_user_says,
)

TOOLS = [
    ServiceTool("secret_fact_agent", "Useful for getting the secret fact."),
    ServiceTool("dumb_fact_agent", "Useful for getting random dumb facts."),
]


def result_for(message: QueueMessage, text: str, error: str | None = None) -> TaskResult:
    step = TaskDefinition.model_validate(message.data)
    return TaskResult(task_id=step.task_id, step_id=step.step_id, result=text, error=error)


def round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """What the control plane does between calls: the state is stored as JSON."""
    loaded: dict[str, Any] = json.loads(json.dumps(state))
    return loaded


async def test_routes_to_the_service_the_llm_picks(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook(
        [
            (when_tool_result("dumb_fact_agent"), answer_with_tool_results()),
            (when_user_says("dumb"), call("dumb_fact_agent", {"input": "a dumb fact please"})),
        ]
    )
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    task = TaskDefinition(input="Tell me something dumb")
    [step], state = await orchestrator.get_next_messages(task, TOOLS, {})
    assert step.type == "dumb_fact_agent"
    sent = TaskDefinition.model_validate(step.data)
    assert sent.input == "a dumb fact please" and sent.task_id == task.task_id
    assert sent.step_id is not None

    state = await orchestrator.add_result_to_state(
        result_for(step, "Llamas hum."), round_trip(state)
    )
    [final], state = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    assert is_final(final)
    assert TaskResult.model_validate(final.data).result == "Llamas hum."
    # The LLM was shown the service tools plus finalize.
    first_request = scripted_llm.requests[0]
    assert sorted(first_request.tools) == ["dumb_fact_agent", "finalize", "secret_fact_agent"]


async def test_finalize_tool_ends_the_task(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([(always(), call("finalize", {"input": "All done."}))])
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    [final], _ = await orchestrator.get_next_messages(TaskDefinition(input="hi"), TOOLS, {})
    assert is_final(final)
    assert TaskResult.model_validate(final.data).result == "All done."


async def test_step_limit_fails_a_looping_task(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([(always(), call("dumb_fact_agent", {"input": "again"}))])
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm(), max_steps=3)
    task = TaskDefinition(input="loop forever")
    state: dict[str, Any] = {}
    for _ in range(3):
        [step], state = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
        state = await orchestrator.add_result_to_state(result_for(step, "more"), state)
    with pytest.raises(TaskFailedError, match="no final answer after 3 orchestrator steps"):
        await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    assert scripted_llm.request_count == 3


async def test_parallel_calls_are_all_awaited_before_the_next_turn(
    scripted_llm: ScriptedLLMServer,
) -> None:
    both = ToolCalls(
        [
            Call("secret_fact_agent", {"input": "secret?"}),
            Call("dumb_fact_agent", {"input": "dumb?"}),
        ]
    )
    scripted_llm.respond = RuleBook(
        [
            (when(lambda r: len(r.tool_results) == 2), answer_with_tool_results(separator=" + ")),
            (always(), both),
        ]
    )
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    task = TaskDefinition(input="both please")
    steps, state = await orchestrator.get_next_messages(task, TOOLS, {})
    assert sorted(s.type for s in steps) == ["dumb_fact_agent", "secret_fact_agent"]
    by_type = {s.type: s for s in steps}

    state = await orchestrator.add_result_to_state(
        result_for(by_type["dumb_fact_agent"], "DUMB"), round_trip(state)
    )
    waiting, state = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    assert waiting == [], "one call is still running: no new LLM turn"
    assert scripted_llm.request_count == 1

    state = await orchestrator.add_result_to_state(
        result_for(by_type["secret_fact_agent"], "SECRET"), round_trip(state)
    )
    [final], _ = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    assert sorted(TaskResult.model_validate(final.data).result.split(" + ")) == ["DUMB", "SECRET"]
    assert scripted_llm.request_count == 2


async def test_failed_step_and_unknown_service_are_told_to_the_llm(
    scripted_llm: ScriptedLLMServer,
) -> None:
    def decide(request: Any) -> Any:
        if not request.tool_results:
            return ToolCalls([Call("no_such_agent", {"input": "x"})])
        if len(request.tool_results) == 1:
            return ToolCalls([Call("secret_fact_agent", {"input": "x"})])
        return answer(" || ".join(request.tool_results))(request)

    scripted_llm.respond = decide
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    task = TaskDefinition(input="try")
    [step], state = await orchestrator.get_next_messages(task, TOOLS, {})
    assert step.type == "secret_fact_agent"
    state = await orchestrator.add_result_to_state(
        result_for(step, "", error="ValueError: boom"), round_trip(state)
    )
    [final], _ = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    text = TaskResult.model_validate(final.data).result
    assert "there is no service named 'no_such_agent'" in text
    assert "Error from secret_fact_agent: ValueError: boom" in text


async def test_stale_results_are_ignored(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([(always(), call("dumb_fact_agent", {"input": "x"}))])
    orchestrator = AgentOrchestrator(llm=scripted_llm.llm())
    task = TaskDefinition(input="x")
    [_step], state = await orchestrator.get_next_messages(task, TOOLS, {})
    stale = TaskResult(task_id=task.task_id, step_id="not-a-step", result="?")
    assert await orchestrator.add_result_to_state(stale, state) == state


def test_needs_a_function_calling_llm() -> None:
    from llama_index.core.llms import MockLLM

    with pytest.raises(ConfigurationError, match="function-calling LLM"):
        AgentOrchestrator(llm=MockLLM())
    with pytest.raises(ConfigurationError, match="max_steps"):
        AgentOrchestrator(llm=OfflineLLM(), max_steps=0)


async def test_offline_llm_routes_the_readme_question() -> None:
    orchestrator = AgentOrchestrator(llm=OfflineLLM())
    task = TaskDefinition(input="What is the secret fact?")
    [step], state = await orchestrator.get_next_messages(task, TOOLS, {})
    assert step.type == "secret_fact_agent"
    state = await orchestrator.add_result_to_state(result_for(step, "Cria!"), round_trip(state))
    [final], _ = await orchestrator.get_next_messages(task, TOOLS, round_trip(state))
    assert TaskResult.model_validate(final.data).result == "Cria!"
