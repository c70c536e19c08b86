"""PipelineOrchestrator driving real services through the control plane, on both queues,
including a control-plane restart in the middle of a pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llama_agents import (
    ComponentService,
    ControlPlaneServer,
    FunctionStep,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    RouterStep,
    ServiceStep,
    TaskStatus,
)
from llama_agents.control_plane import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE


def route_by_topic(value: str, labels: list[str]) -> str:
    return "math" if any(ch.isdigit() for ch in value) else "chat"


def build(queue):  # type: ignore[no-untyped-def]
    services = [
        ComponentService(lambda s: s.strip().lower(), queue, "Cleans input.", "cleaner"),
        ComponentService(lambda s: str(sum(int(n) for n in s.split("+"))), queue, "Adds.", "adder"),
        ComponentService(lambda s: f"you said: {s}", queue, "Chats.", "chatter"),
    ]
    pipeline = Pipeline.sequence(
        ServiceStep("cleaner"),
        RouterStep({"math": ServiceStep("adder"), "chat": ServiceStep("chatter")}, route_by_topic),
        FunctionStep(lambda s: f"[{s}]", name="wrap"),
    )
    return services, PipelineOrchestrator(pipeline)


async def test_pipeline_with_router_and_function_step(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    services, orchestrator = build(queue)
    control_plane = ControlPlaneServer(queue, orchestrator)
    launcher = LocalLauncher(services, control_plane, queue)
    assert await launcher.alaunch_single("  2+3 ", timeout=DEADLINE) == "[5]"
    assert await launcher.alaunch_single(" HELLO ", timeout=DEADLINE) == "[you said: hello]"
    record = await launcher.arun_task("1+1")
    assert [step.service for step in record.steps] == ["cleaner", "adder"]
    assert record.result is not None
    assert {"node": "router_1", "route": "math"} in record.result.data["trace"]


@pytest.mark.rabbitmq
async def test_pipeline_resumes_after_a_control_plane_restart(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    store = tmp_path / "pipeline.db"
    queue = await rabbitmq_factory()
    services, orchestrator = build(queue)
    first = ControlPlaneServer(queue, orchestrator, SqliteStateStore(store))
    await first.start()
    for service in services:
        await first.register_service(service.service_definition)
    consuming = asyncio.create_task((await first.register_to_message_queue())())
    cleaner = await services[0].launch_local()  # only the first step's service runs
    await queue.declare_queue("adder")
    record = await first.create_task("4+4")
    # Wait until the pipeline reached the adder, whose service is not running yet.
    await first.manager.wait_until(
        record.task_id,
        lambda r: len(r.steps) == 2 and r.steps[1].published,
        timeout=DEADLINE,
    )
    await first.close()
    consuming.cancel()
    await services[0].deregister_from_message_queue()
    cleaner.cancel()

    second_queue = await rabbitmq_factory()
    services, orchestrator = build(second_queue)
    second = ControlPlaneServer(second_queue, orchestrator, SqliteStateStore(store))
    consuming = asyncio.create_task((await second.register_to_message_queue())())
    adder = await services[1].launch_local()
    finished = await second.wait_for_task(record.task_id, timeout=DEADLINE)
    assert finished.status is TaskStatus.COMPLETED
    assert finished.result is not None and finished.result.result == "[8]"
    assert [step.service for step in finished.steps] == ["cleaner", "adder"]
    await services[1].deregister_from_message_queue()
    await second.close()
    consuming.cancel()
    adder.cancel()


async def test_a_raising_service_fails_its_step_once(queue_factory: QueueFactory) -> None:
    """A step that raises is reported as a failed step: not retried, not dead-lettered."""
    import pytest

    from llama_agents import TaskFailedError

    queue = await queue_factory()
    calls: list[str] = []

    def broken(text: str) -> str:
        calls.append(text)
        raise ValueError(f"cannot parse {text!r}")

    service = ComponentService(broken, queue, "Parses.", "parser")
    control_plane = ControlPlaneServer(
        queue, PipelineOrchestrator(Pipeline.sequence(ServiceStep("parser")))
    )
    launcher = LocalLauncher([service], control_plane, queue)
    with pytest.raises(TaskFailedError, match=r"ValueError: cannot parse 'x'"):
        await launcher.alaunch_single("x", timeout=DEADLINE)
    assert calls == ["x"], "ran once: a failed step is reported, not retried"


async def test_any_service_whose_step_raises_fails_the_step(queue_factory: QueueFactory) -> None:
    """The base class turns an exception in `run_task` into a failed step, for every service."""
    import pytest

    from llama_agents import BaseService, TaskDefinition, TaskFailedError, TaskResult

    calls: list[str] = []

    class Fragile(BaseService):
        async def run_task(self, task: TaskDefinition) -> TaskResult:
            calls.append(task.input)
            raise RuntimeError("disk full")

    queue = await queue_factory()
    service = Fragile(queue, "fragile", "Fails.")
    control_plane = ControlPlaneServer(
        queue, PipelineOrchestrator(Pipeline.sequence(ServiceStep("fragile")))
    )
    launcher = LocalLauncher([service], control_plane, queue)
    with pytest.raises(TaskFailedError, match="RuntimeError: disk full"):
        await launcher.alaunch_single("y", timeout=DEADLINE)
    assert calls == ["y"]
