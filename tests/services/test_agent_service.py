"""AgentService: any llama-index workflow agent, a fresh context per task, bounded
concurrency, failures reported as failed steps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step

from llama_agents import (
    ActionTypes,
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.control_plane import SqliteStateStore
from llama_agents.control_plane.task_repository import TaskRepository
from tests.conftest import QueueFactory
from tests.support.getting_started import QUESTION, SECRET, SecretTool, readme_rules
from tests.support.helpers import DEADLINE, Collector
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    answer,
    answer_with_tool_results,
    call,
    when_tool_offered,
    when_tool_result,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def run_one(service: AgentService, text: str = QUESTION) -> TaskResult:
    return await service.run_task(TaskDefinition(input=text, step_id="s1"))


async def test_agent_workflow_runs_as_a_service(
    scripted_llm: ScriptedLLMServer, queue_factory: QueueFactory
) -> None:
    secret = SecretTool()
    scripted_llm.respond = RuleBook(
        [
            (
                when_tool_offered("get_the_secret_fact") & ~when_tool_result("get_the_secret_fact"),
                call("get_the_secret_fact", {}),
            ),
            (
                when_tool_result("get_the_secret_fact"),
                answer_with_tool_results(tool="get_the_secret_fact"),
            ),
        ]
    )
    agent = FunctionAgent(
        name="secret",
        description="Knows the secret.",
        tools=[secret.tool()],
        llm=scripted_llm.llm(),
    )
    workflow = AgentWorkflow(agents=[agent], root_agent="secret")
    service = AgentService(workflow, await queue_factory(), "Knows secrets.", "secret_team")
    result = await run_one(service)
    assert result.result == SECRET
    assert result.step_id == "s1" and result.error is None
    assert any(m.role.value == "tool" for m in result.history)


async def test_each_task_gets_a_fresh_context(scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.respond = RuleBook([], default=answer("ok"))
    agent = FunctionAgent(tools=[], llm=scripted_llm.llm())
    service = AgentService(agent, None, "d", "fresh")
    first = await run_one(service, "first question")
    second = await run_one(service, "second question")
    assert [m.content for m in first.history] == ["first question", "ok"]
    assert [m.content for m in second.history] == ["second question", "ok"]
    assert "first question" not in str(scripted_llm.requests[1].messages)


class Gate(Workflow):
    """A workflow that waits at a gate, counting how many runs are inside at once."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.inside = 0
        self.peak = 0
        self.open = asyncio.Event()
        self.full = asyncio.Event()

    @step
    async def wait(self, ctx: Context, ev: StartEvent) -> StopEvent:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        if self.inside == 2:
            self.full.set()
        await self.open.wait()
        self.inside -= 1
        if ev.user_msg == "explode":
            raise RuntimeError("the agent fell over")
        return StopEvent(result=f"done: {ev.user_msg}")


async def test_concurrency_is_bounded_and_failures_become_failed_steps(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    gate = Gate()
    service = AgentService(gate, queue, "Waits.", "gated", max_concurrent_tasks=2)
    results = Collector()
    await queue.declare_queue("control_plane")
    consuming = [
        asyncio.create_task((await queue.register_consumer(results.consumer("control_plane")))()),
        await service.launch_local(),
    ]
    for text in ["a", "explode", "b", "c"]:
        step = TaskDefinition(input=text, task_id=f"t-{text}", step_id=f"s-{text}")
        await queue.publish(
            QueueMessage(type="gated", action=ActionTypes.NEW_TASK, data=step.model_dump())
        )
    async with asyncio.timeout(DEADLINE):
        await gate.full.wait()
    gate.open.set()
    got = await results.wait_for(4)
    by_step = {r.step_id: r for r in (TaskResult.model_validate(m.data) for m in got)}
    assert gate.peak == 2, "never more than max_concurrent_tasks at once"
    assert by_step["s-explode"].error == "RuntimeError: the agent fell over"
    assert by_step["s-explode"].result == ""
    assert {by_step[f"s-{t}"].result for t in "abc"} == {"done: a", "done: b", "done: c"}
    assert all(m.action is ActionTypes.COMPLETED_TASK for m in got)
    assert all(m.publisher_id == "gated" for m in got)
    for task in consuming:
        task.cancel()


def test_agent_must_be_a_workflow() -> None:
    with pytest.raises(TypeError, match="workflow agent"):
        AgentService(object(), None, "d", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid message type"):
        AgentService(Gate(), None, "d", "bad name")


@pytest.mark.rabbitmq
async def test_restarted_control_plane_does_not_ask_the_llm_again(
    scripted_llm: ScriptedLLMServer, rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    """The LLM's routing decision is saved with the step it produced."""
    scripted_llm.respond = readme_rules()
    store_path = tmp_path / "cp.db"
    queue = await rabbitmq_factory()
    first = ControlPlaneServer(
        queue, AgentOrchestrator(llm=scripted_llm.llm()), SqliteStateStore(store_path)
    )
    await first.start()
    await first.register_service(
        ServiceDefinition(
            service_name="secret_fact_agent", description="Useful for getting the secret fact."
        )
    )
    await queue.declare_queue("secret_fact_agent")
    record = await first.create_task(QUESTION)
    await first.manager.wait_until(
        record.task_id, lambda r: bool(r.steps) and r.steps[0].published, timeout=DEADLINE
    )
    await first.close()  # stopped after routing: nothing consumed the step yet
    assert scripted_llm.request_count == 1
    routed = await TaskRepository(SqliteStateStore(store_path)).load(record.task_id)
    assert routed is not None and routed.status.value == "running"
    assert [s.service for s in routed.steps] == ["secret_fact_agent"]

    second_queue = await rabbitmq_factory()
    second = ControlPlaneServer(
        second_queue, AgentOrchestrator(llm=scripted_llm.llm()), SqliteStateStore(store_path)
    )
    consuming = asyncio.create_task((await second.register_to_message_queue())())
    secret = SecretTool()
    agent = FunctionAgent(tools=[secret.tool()], llm=scripted_llm.llm())
    service = AgentService(
        agent, second_queue, "Useful for getting the secret fact.", "secret_fact_agent"
    )
    service_task = await service.launch_local()
    finished = await second.wait_for_task(record.task_id, timeout=DEADLINE)
    assert finished.result is not None and finished.result.result == SECRET
    # 1 routing decision (before the restart) + 2 agent turns + 1 final turn: never re-routed.
    assert scripted_llm.request_count == 4
    routing = [r for r in scripted_llm.requests if "secret_fact_agent" in r.tools]
    assert len(routing) == 2 and routing[1].tool_results == [SECRET]
    await service.deregister_from_message_queue()
    await second.close()
    consuming.cancel()
    service_task.cancel()
