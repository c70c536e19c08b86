"""Results of custom services written as the README shows them, `TaskResult(task_id=...,
result=...)` with no step id, go to the step they answer, and only to it (issue 9, item 5):
an LLM orchestrator completes the task; in a pipeline, a repeated step-1 result (a
redelivery) never completes step 2. Both queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llama_agents import (
    ActionTypes,
    AgentOrchestrator,
    OfflineLLM,
    Pipeline,
    PipelineOrchestrator,
    QueueMessage,
    ServiceStep,
    TaskStatus,
)
from llama_agents.control_plane.models import StepStatus
from tests.conftest import QueueFactory
from tests.support.hardening import ReadmeService, served
from tests.support.helpers import DEADLINE

SECRET = "A baby llama is called a 'Cria'."


async def test_an_agent_orchestrator_completes_tasks_answered_without_step_ids(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    orchestrator = AgentOrchestrator(llm=OfflineLLM())
    async with served(queue, tmp_path / "cp.sqlite3", orchestrator) as system:
        await system.add(
            ReadmeService(
                queue,
                "secret_fact_agent",
                "Useful for getting the secret fact.",
                answer=lambda _: SECRET,
            )
        )
        task_ids = [await system.create("What is the secret fact?") for _ in range(3)]
        for task_id in task_ids:
            record = await system.finished(task_id)
            assert record.status is TaskStatus.COMPLETED, record.error
            assert record.result is not None and SECRET in record.result.result


async def test_a_repeated_step_one_result_never_completes_step_two_of_a_pipeline(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    queue = await queue_factory()
    pipeline = Pipeline.sequence(ServiceStep("first"), ServiceStep("second"))
    # prefetch=1: the control plane takes its messages one by one, in order.
    async with served(
        queue, tmp_path / "cp.sqlite3", PipelineOrchestrator(pipeline), prefetch=1
    ) as system:
        first = ReadmeService(queue, "first", answer=lambda text: f"first({text})")
        second = ReadmeService(queue, "second", answer=lambda text: f"second({text})", hold=True)
        await system.add(first)
        await system.add(second)
        task_id = await system.create("x")
        async with asyncio.timeout(DEADLINE):
            await second.started.wait()  # step 2 is open, and running
        [step_one_result] = first.published
        assert step_one_result.action is ActionTypes.COMPLETED_TASK

        # Step 1's result comes again (a redelivery), then a marker the control plane
        # dead-letters once it has handled everything before it.
        await queue.publish(step_one_result)
        await queue.publish(
            QueueMessage(type="control_plane", action=ActionTypes.COMPLETED_TASK, data={"x": 1})
        )
        await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)

        running = await system.control_plane.get_task(task_id)
        assert running.status is TaskStatus.RUNNING, running.result
        assert [s.status for s in running.steps] == [StepStatus.COMPLETED, StepStatus.PENDING]

        second.gate.set()
        record = await system.finished(task_id)
        assert record.status is TaskStatus.COMPLETED, record.error
        assert record.result is not None and record.result.result == "second(first(x))"
        assert (first.inputs, second.inputs) == (["x"], ["first(x)"])
