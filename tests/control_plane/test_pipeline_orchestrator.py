"""PipelineOrchestrator: explicit flows, driven step by step as the control plane would."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import BaseTool

from llama_agents.errors import ConfigurationError, TaskFailedError
from llama_agents.messages import QueueMessage, TaskDefinition, TaskResult
from llama_agents.orchestrators.base import is_final
from llama_agents.orchestrators.pipeline import (
    FunctionStep,
    LLMSelector,
    Pipeline,
    PipelineOrchestrator,
    Route,
    RouterStep,
    ServiceStep,
)
from llama_agents.orchestrators.service_tool import ServiceTool

Service = Callable[[str], str]


def result_for(message: QueueMessage, text: str, error: str | None = None) -> TaskResult:
    step = TaskDefinition.model_validate(message.data)
    return TaskResult(task_id=step.task_id, step_id=step.step_id, result=text, error=error)


def round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """What the control plane does between calls: the state is stored as JSON."""
    loaded: dict[str, Any] = json.loads(json.dumps(state))
    return loaded


async def drive(
    pipeline: Pipeline, task_input: str, services: dict[str, Service]
) -> tuple[TaskResult, list[tuple[str, str]]]:
    """Run a task to its end, with a fresh orchestrator and JSON-stored state at every call."""
    task = TaskDefinition(input=task_input)
    state: dict[str, Any] = {}
    sent: list[tuple[str, str]] = []
    for _ in range(20):
        [message], state = await PipelineOrchestrator(pipeline).get_next_messages(
            task, [], round_trip(state)
        )
        if is_final(message):
            return TaskResult.model_validate(message.data), sent
        step_input = TaskDefinition.model_validate(message.data).input
        sent.append((message.type, step_input))
        reply = result_for(message, services[message.type](step_input))
        state = await PipelineOrchestrator(pipeline).add_result_to_state(reply, round_trip(state))
    raise AssertionError("the pipeline did not finish")


async def test_two_services_in_sequence() -> None:
    pipeline = Pipeline.sequence(
        ServiceStep("writer"),
        ServiceStep("editor", input_template="Request: {task_input}\nDraft: {input}"),
    )
    final, sent = await drive(
        pipeline, "a haiku", {"writer": lambda s: "DRAFT", "editor": lambda s: "FINAL"}
    )
    assert sent == [("writer", "a haiku"), ("editor", "Request: a haiku\nDraft: DRAFT")]
    assert final.result == "FINAL"
    assert final.data["trace"] == [
        {"node": "writer", "output": "DRAFT"},
        {"node": "editor", "output": "FINAL"},
    ]


async def test_sync_and_async_function_steps_between_services() -> None:
    threads: list[int] = []

    def shout(text: str) -> str:
        threads.append(threading.get_ident())
        return text.upper()

    async def exclaim(text: str) -> str:
        return text + "!"

    pipeline = Pipeline.sequence(
        ServiceStep("a"), FunctionStep(shout), FunctionStep(exclaim), ServiceStep("b")
    )
    final, sent = await drive(pipeline, "hi", {"a": lambda s: s + " there", "b": str.title})
    assert sent == [("a", "hi"), ("b", "HI THERE!")]
    assert final.result == "Hi There!"
    assert threads and threads[0] != threading.get_ident(), "sync steps run off the event loop"
    assert [entry["node"] for entry in final.data["trace"]] == ["a", "shout", "exclaim", "b"]


def math_or_chat(value: str, labels: list[str]) -> str:
    assert labels == ["math", "chat"]
    return "math" if any(c.isdigit() for c in value) else "chat"


async def test_function_router_takes_inline_branch_then_continues_after_it() -> None:
    async def chat(text: str) -> str:
        return f"chatting about {text}"

    pipeline = Pipeline.sequence(
        RouterStep({"math": ServiceStep("calculator"), "chat": FunctionStep(chat)}, math_or_chat),
        ServiceStep("polish"),
    )
    services: dict[str, Service] = {"calculator": lambda s: "4", "polish": lambda s: f"<{s}>"}
    final, sent = await drive(pipeline, "2+2", services)
    assert sent == [("calculator", "2+2"), ("polish", "4")]
    assert final.result == "<4>"
    assert final.data["trace"][0] == {"node": "router_1", "route": "math"}

    final, sent = await drive(pipeline, "llamas", services)
    assert sent == [("polish", "chatting about llamas")]
    assert final.result == "<chatting about llamas>"


async def test_router_to_named_nodes_in_a_graph() -> None:
    async def pick(value: str, labels: list[str]) -> str:
        return "billing" if "invoice" in value else "tech"

    pipeline = Pipeline(
        nodes=[
            ServiceStep("triage"),
            RouterStep({"billing": "billing_agent", "tech": "tech_agent"}, pick, name="route"),
            ServiceStep("billing_agent"),
            ServiceStep("tech_agent"),
            FunctionStep(lambda s: s + " -- support", name="sign"),
        ],
        edges={"triage": "route", "billing_agent": "sign", "tech_agent": "sign"},
    )
    services: dict[str, Service] = {
        "triage": lambda s: s,
        "billing_agent": lambda s: "refunded",
        "tech_agent": lambda s: "rebooted",
    }
    final, sent = await drive(pipeline, "my invoice is wrong", services)
    assert [service for service, _ in sent] == ["triage", "billing_agent"]
    assert final.result == "refunded -- support"
    final, _ = await drive(pipeline, "my modem is down", services)
    assert final.result == "rebooted -- support"


class ToolPickingLLM(MockFunctionCallingLLM):
    """A function-calling LLM that always calls one tool, and counts how often it is asked."""

    def __init__(self, choice: str) -> None:
        super().__init__(response_generator=self._respond)
        self._choice = choice
        self._requests: list[tuple[list[ChatMessage], list[Any]]] = []

    def _respond(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self._requests.append((list(messages), list(kwargs.get("tools", []))))
        call = ToolCallBlock(tool_call_id="c1", tool_name=self._choice, tool_kwargs={"input": "x"})
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])


async def test_llm_router_decides_once_across_restarts() -> None:
    llm = ToolPickingLLM("poetry")
    routes = {
        "math": Route(ServiceStep("calculator"), "Arithmetic questions."),
        "poetry": Route(ServiceStep("poet"), "Requests for poems."),
    }
    pipeline = Pipeline.sequence(RouterStep(routes, LLMSelector(llm)), FunctionStep(str.strip))
    final, sent = await drive(pipeline, "a poem about llamas", {"poet": lambda s: " verses "})
    assert sent == [("poet", "a poem about llamas")]
    assert final.result == "verses"
    assert len(llm._requests) == 1, "a resumed task must not ask the LLM again"
    [messages], [tools] = zip(*llm._requests, strict=True)
    assert "a poem about llamas" in (messages[-1].content or "")
    offered = {tool.metadata.name: tool.metadata.description for tool in tools}
    assert offered == {"math": "Arithmetic questions.", "poetry": "Requests for poems."}


class TextLLM(CustomLLM):
    """A plain-text (not function-calling) LLM with a fixed reply."""

    reply: str = ""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=False)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self.reply)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("reply", "default", "expected"),
    [("I would pick **poetry**.", None, "poet"), ("no idea", "math", "calculator")],
)
async def test_text_llm_router_matches_the_reply(
    reply: str, default: str | None, expected: str
) -> None:
    selector = LLMSelector(TextLLM(reply=reply))
    routes = {"math": ServiceStep("calculator"), "poetry": ServiceStep("poet")}
    pipeline = Pipeline.sequence(RouterStep(routes, selector, default=default))
    _, sent = await drive(pipeline, "hi", {"poet": str.upper, "calculator": str.upper})
    assert sent == [(expected, "hi")]


async def test_unusable_router_answer_fails_the_task() -> None:
    routes = {"math": ServiceStep("calculator"), "poetry": ServiceStep("poet")}
    orchestrator = PipelineOrchestrator(
        Pipeline.sequence(RouterStep(routes, LLMSelector(TextLLM(reply="both?"))))
    )
    with pytest.raises(TaskFailedError, match=r"step 'router_1': the selector answered 'both\?'"):
        await orchestrator.get_next_messages(TaskDefinition(input="hi"), [], {})


async def test_resume_mid_pipeline_with_a_new_orchestrator() -> None:
    calls: list[str] = []

    def count(text: str) -> str:
        calls.append(text)
        return text

    pipeline = Pipeline.sequence(ServiceStep("a"), FunctionStep(count), ServiceStep("b"))
    task = TaskDefinition(input="go")
    [step_a], state = await PipelineOrchestrator(pipeline).get_next_messages(task, [], {})
    waiting, same = await PipelineOrchestrator(pipeline).get_next_messages(
        task, [], round_trip(state)
    )
    assert waiting == [] and same == state, "a pending step is waited for, not re-sent"
    state = await PipelineOrchestrator(pipeline).add_result_to_state(
        result_for(step_a, "A"), round_trip(state)
    )
    [step_b], state = await PipelineOrchestrator(pipeline).get_next_messages(
        task, [], round_trip(state)
    )
    assert (step_b.type, TaskDefinition.model_validate(step_b.data).input) == ("b", "A")
    waiting, _ = await PipelineOrchestrator(pipeline).get_next_messages(task, [], round_trip(state))
    assert waiting == [] and calls == ["A"], "local steps already run are not run again"
    assert state["version"] == 1 and state["node"] == "b" and state["pending"]["service"] == "b"


async def test_duplicate_and_stale_results_are_ignored() -> None:
    orchestrator = PipelineOrchestrator(Pipeline.sequence(ServiceStep("a"), ServiceStep("b")))
    task = TaskDefinition(input="go")
    [step_a], state = await orchestrator.get_next_messages(task, [], {})
    stranger = TaskResult(task_id=task.task_id, step_id="not-a-step", result="??")
    assert await orchestrator.add_result_to_state(stranger, state) == state
    first = await orchestrator.add_result_to_state(result_for(step_a, "A"), state)
    [step_b], state = await orchestrator.get_next_messages(task, [], first)
    # step a's result again, while b runs: ignored, and b is still awaited.
    assert await orchestrator.add_result_to_state(result_for(step_a, "A again"), state) == state
    state = await orchestrator.add_result_to_state(result_for(step_b, "B"), state)
    assert await orchestrator.add_result_to_state(result_for(step_b, "B again"), state) == state
    [final], _ = await orchestrator.get_next_messages(task, [], state)
    assert TaskResult.model_validate(final.data).result == "B"


async def test_failed_step_fails_the_task() -> None:
    orchestrator = PipelineOrchestrator(Pipeline.sequence(ServiceStep("a", name="fetch")))
    task = TaskDefinition(input="go")
    [step], state = await orchestrator.get_next_messages(task, [], {})
    state = await orchestrator.add_result_to_state(result_for(step, "", error="boom"), state)
    with pytest.raises(TaskFailedError, match=r"step 'fetch' \(service 'a'\) failed: boom"):
        await orchestrator.get_next_messages(task, [], round_trip(state))


async def test_failing_function_step_fails_the_task() -> None:
    def broken(text: str) -> str:
        raise ValueError("bad input")

    orchestrator = PipelineOrchestrator(Pipeline.sequence(FunctionStep(broken)))
    with pytest.raises(TaskFailedError, match=r"step 'broken' raised ValueError: bad input"):
        await orchestrator.get_next_messages(TaskDefinition(input="go"), [], {})


async def test_cycle_guard_stops_a_local_loop() -> None:
    pipeline = Pipeline(
        nodes=[
            FunctionStep(lambda s: s + ".", name="spin"),
            RouterStep({"again": "spin", "done": "spin"}, lambda v, labels: "again", name="loop"),
        ],
        edges={"spin": "loop"},
    )
    orchestrator = PipelineOrchestrator(pipeline, max_local_steps=7)
    with pytest.raises(TaskFailedError, match="7 local steps in a row"):
        await orchestrator.get_next_messages(TaskDefinition(input="go"), [], {})


async def test_unregistered_service_fails_early() -> None:
    orchestrator = PipelineOrchestrator(Pipeline.sequence(ServiceStep("ghost")))
    tools: list[BaseTool] = [ServiceTool("real", "A real service.")]
    with pytest.raises(TaskFailedError, match="'ghost', which is not registered"):
        await orchestrator.get_next_messages(TaskDefinition(input="go"), tools, {})
    [message], _ = await orchestrator.get_next_messages(TaskDefinition(input="go"), [], {})
    assert message.type == "ghost", "without a service list, nothing is checked"


def test_default_names() -> None:
    pick: Callable[[str, list[str]], str] = lambda v, labels: labels[0]  # noqa: E731
    pipeline = Pipeline.sequence(
        RouterStep({"x": ServiceStep("a"), "y": FunctionStep(str.upper)}, pick),
        RouterStep({"z": ServiceStep("b")}, pick),
    )
    assert list(pipeline.nodes) == ["router_1", "a", "upper", "router_2", "b"]
    assert pipeline.next_node("a") == "router_2" and pipeline.next_node("b") is None


def pick_first(value: str, labels: list[str]) -> str:
    return labels[0]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Pipeline([]), "at least one step"),
        (lambda: Pipeline.sequence(ServiceStep("a"), ServiceStep("a")), "two steps are named 'a'"),
        (lambda: Pipeline([ServiceStep("a")], edges={"a": "b"}), "unknown node 'b'"),
        (lambda: Pipeline([ServiceStep("a")], edges={"z": "a"}), "unknown node 'z'"),
        (lambda: Pipeline([ServiceStep("a")], start="b"), "start node 'b' is unknown"),
        (
            lambda: Pipeline(
                [RouterStep({"x": "a"}, pick_first, name="r"), ServiceStep("a")], edges={"r": "a"}
            ),
            "leaves a router",
        ),
        (lambda: Pipeline([RouterStep({"x": "nowhere"}, pick_first)]), "unknown node 'nowhere'"),
        (lambda: RouterStep({}, pick_first), "at least one route"),
        (lambda: RouterStep({"x": "a"}, pick_first, default="y"), "default route 'y'"),
        (lambda: RouterStep({"two words": "a"}, LLMSelector(TextLLM())), "LLM tool name"),
        (lambda: ServiceStep("a", input_template="{inptu}"), "cannot be formatted"),
        (lambda: LLMSelector(TextLLM(), prompt="{json: 1}"), "cannot be formatted"),
        (lambda: PipelineOrchestrator(Pipeline([ServiceStep("a")]), max_local_steps=0), "at least"),
    ],
)
def test_configuration_errors(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()
