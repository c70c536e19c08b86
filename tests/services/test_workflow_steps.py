"""A served workflow builds its step table once (`remember_steps`), not on every run and
every step; a step added to its class later is still found, and agents work the same."""

from __future__ import annotations

import copy
import gc
from typing import Any

import pytest
import workflows.workflow
from llama_index.core.agent.workflow import FunctionAgent
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from llama_agents import SimpleMessageQueue, WorkflowService
from llama_agents.llms import OfflineLLM
from llama_agents.services import workflow_steps
from llama_agents.services.workflow_steps import remember_steps
from tests.support.helpers import DEADLINE
from tests.support.processes import run_benchmark


class Halfway(Event):
    text: str


def make_two_steps() -> type[Workflow]:
    """A fresh class per test: `add_step` changes the class it is called on."""

    class TwoSteps(Workflow):
        @step
        async def first(self, ev: StartEvent) -> Halfway:
            return Halfway(text=ev.input + " one")

        @step
        async def second(self, ev: Halfway) -> StopEvent:
            return StopEvent(result=ev.text + " two")

    return TwoSteps


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each time the workflows library rebuilds a step table from an instance."""
    seen: list[object] = []
    real = workflows.workflow.get_steps_from_instance

    def counting(workflow: object) -> Any:
        seen.append(workflow)
        return real(workflow)

    monkeypatch.setattr(workflows.workflow, "get_steps_from_instance", counting)
    return seen


async def test_a_served_workflow_builds_its_step_table_once(lookups: list[object]) -> None:
    workflow = make_two_steps()(timeout=10)
    lookups.clear()  # the one its constructor makes
    WorkflowService(workflow, SimpleMessageQueue(), service_name="two-steps")
    results = [await workflow.run(input=f"run {n}") for n in range(3)]
    assert results == [f"run {n} one two" for n in range(3)]
    assert len(lookups) == 1, f"the step table was built {len(lookups)} times for 3 runs"

    unserved = make_two_steps()(timeout=10)
    lookups.clear()
    await unserved.run(input="bare")
    assert len(lookups) > 1  # what the cache saves: the library rebuilds it per lookup


async def test_each_lookup_gets_its_own_table() -> None:
    workflow = make_two_steps()(timeout=10)
    remember_steps(workflow)
    table = workflow._get_steps()
    assert set(table) == {"first", "second"}
    table.clear()
    assert set(workflow._get_steps()) == {"first", "second"}


async def test_a_step_added_to_the_class_later_is_found(lookups: list[object]) -> None:
    cls = make_two_steps()
    workflow = cls(timeout=10)
    lookups.clear()
    remember_steps(workflow)
    assert set(workflow._get_steps()) == {"first", "second"}

    @step(workflow=cls)
    async def extra(ev: Halfway) -> None:
        return None

    assert set(workflow._get_steps()) == {"first", "second", "extra"}
    assert len(lookups) == 2  # built again once, for the new version only
    workflow._get_steps()
    assert len(lookups) == 2


async def test_remembering_twice_keeps_one_table(lookups: list[object]) -> None:
    workflow = make_two_steps()(timeout=10)
    lookups.clear()
    remember_steps(workflow)
    workflow._get_steps()
    remember_steps(workflow)
    workflow._get_steps()
    assert len(lookups) == 1


async def test_a_copy_of_a_served_workflow_finds_its_own_steps(lookups: list[object]) -> None:
    # A copy is another workflow: steps bound to the original would run on the original's
    # fields (its LLM, its tools).
    workflow = make_two_steps()(timeout=10)
    remember_steps(workflow)
    workflow._get_steps()
    duplicate = copy.copy(workflow)
    assert all(f.__self__ is duplicate for f in duplicate._get_steps().values())

    agent = FunctionAgent(name="original", llm=OfflineLLM(), tools=[])
    remember_steps(agent)
    agent._get_steps()
    variant = agent.model_copy(update={"name": "variant"})
    steps = variant._get_steps()
    assert steps and all(getattr(f, "__self__", variant) is variant for f in steps.values())
    assert all(getattr(f, "__self__", agent) is agent for f in agent._get_steps().values())


async def test_a_collected_workflow_is_forgotten() -> None:
    workflow = make_two_steps()(timeout=10)
    remember_steps(workflow)
    assert await workflow.run(input="once") == "once one two"  # its table is built
    key = id(workflow)
    assert key in workflow_steps._tables
    del workflow
    gc.collect()
    assert key not in workflow_steps._tables


async def test_an_agent_runs_the_same_with_its_steps_remembered(lookups: list[object]) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    plain = FunctionAgent(llm=OfflineLLM(), tools=[add])
    remembered = FunctionAgent(llm=OfflineLLM(), tools=[add])
    remember_steps(remembered)  # agents are pydantic models: a plain setattr is refused
    assert set(remembered._get_steps()) == set(plain._get_steps())

    expected = str(await plain.run(user_msg="what is 2 plus 3", ctx=Context(plain)))
    lookups.clear()
    answers = [
        str(await remembered.run(user_msg="what is 2 plus 3", ctx=Context(remembered)))
        for _ in range(2)
    ]
    assert answers == [expected, expected]
    assert lookups == []  # built once already, when it was first asked above


async def test_the_benchmark_prints_a_line_per_workflow_and_way() -> None:
    lines = await run_benchmark(
        "step_lookup.py", "--runs", "4", "--rounds", "1", timeout=DEADLINE * 4
    )
    assert {(r["workflow"], r["way"]) for r in lines} == {
        (w, way) for w in ("two_steps", "function_agent") for way in ("library", "remembered")
    }
    assert all(r["cpu_ms_per_run"] > 0 for r in lines)
