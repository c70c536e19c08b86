"""The control plane: its HTTP API, one result per step, concurrent results, restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_agents import (
    ActionTypes,
    ControlPlaneServer,
    QueueMessage,
    ServiceDefinition,
    SimpleMessageQueue,
    TaskDefinition,
    TaskResult,
)
from llama_agents.control_plane import SqliteStateStore
from llama_agents.control_plane.models import StepRecord, TaskRecord, TaskStatus
from llama_agents.control_plane.task_repository import TaskRepository
from tests.conftest import QueueFactory
from tests.support.control_plane import Worker, completion, serve, stop
from tests.support.helpers import DEADLINE, Collector
from tests.support.orchestrators import FanOutOrchestrator


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlPlaneServer, httpx.AsyncClient]]:
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator(["worker"]), SqliteStateStore(tmp_path / "cp.db"), port=0
    )
    task = await serve(control_plane)
    async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
        yield control_plane, http
    await stop(control_plane, task)


async def test_status_and_health(served: tuple[ControlPlaneServer, httpx.AsyncClient]) -> None:
    _, http = served
    status = (await http.get("/")).json()
    assert status["service"] == "control_plane"
    assert status["status"] == "running"
    assert status["tasks"]["completed"] == 0
    health = await http.get("/health")
    assert health.status_code == 200
    assert health.json()["broker_connected"] is True


async def test_service_routes(served: tuple[ControlPlaneServer, httpx.AsyncClient]) -> None:
    _, http = served
    definition = {"service_name": "worker", "description": "Does the work."}
    registered = await http.post("/services/register", json=definition)
    assert registered.status_code == 200
    assert [s["service_name"] for s in (await http.get("/services")).json()] == ["worker"]
    got = await http.get("/services/worker")
    assert got.json()["description"] == "Does the work."

    missing = await http.get("/services/nobody")
    assert missing.status_code == 404
    assert "nobody" in missing.json()["detail"]
    bad = await http.post("/services/register", json={"service_name": "bad name"})
    assert bad.status_code == 422

    gone = await http.post("/services/deregister", json={"service_name": "worker"})
    assert gone.status_code == 200
    assert (await http.get("/services")).json() == []
    again = await http.post("/services/deregister", json={"service_name": "worker"})
    assert again.status_code == 404


async def test_task_lifecycle_over_http(
    served: tuple[ControlPlaneServer, httpx.AsyncClient],
) -> None:
    control_plane, http = served
    # The step's publish mark is awaited below: held 5 s, it would leave the HTTP client's
    # connection idle as long as uvicorn keeps one open.
    control_plane.manager.marks.delay = 1.0
    worker = Worker(control_plane.message_queue)
    await worker.start()
    human = Collector()
    start = await control_plane.message_queue.register_consumer(human.consumer("human"))
    human_task = asyncio.create_task(start())

    created = await http.post("/tasks", json={"input": "do it"})
    assert created.status_code == 200
    task_id = created.json()["task_id"]
    [step_message] = await worker.steps.wait_for(1)

    running = await http.get(f"/tasks/{task_id}/result")
    assert running.status_code == 202
    assert running.json() == {"task_id": task_id, "status": "running", "finished": False}
    # The broker's confirmation is stored just after the worker got the step: wait for it.
    await control_plane.manager.wait_until(
        task_id, lambda r: bool(r.steps) and r.steps[0].published, DEADLINE
    )
    record = (await http.get(f"/tasks/{task_id}")).json()
    assert record["status"] == "running"
    assert [s["service"] for s in record["steps"]] == ["worker"]
    assert record["steps"][0]["published"] is True

    # A long-poll returns as soon as the result exists.
    waiting = asyncio.create_task(http.get(f"/tasks/{task_id}/result", params={"wait": 30}))
    await worker.answer(step_message, "done it")
    result = await waiting
    assert result.status_code == 200
    assert result.json()["result"] == "done it"

    [final] = await human.wait_for(1)
    assert final.action is ActionTypes.COMPLETED_TASK
    assert TaskResult.model_validate(final.data).result == "done it"
    listed = (await http.get("/tasks")).json()
    assert [(t["task_id"], t["status"]) for t in listed] == [(task_id, "completed")]
    human_task.cancel()


async def test_task_routes_refuse_bad_input(
    served: tuple[ControlPlaneServer, httpx.AsyncClient],
) -> None:
    _, http = served
    assert (await http.get("/tasks/nope")).status_code == 404
    assert (await http.get("/tasks/nope/result")).status_code == 404
    assert (await http.post("/tasks/nope/cancel")).status_code == 404
    assert (await http.post("/tasks", json={})).status_code == 422
    assert (await http.post("/tasks", json={"input": 3})).status_code == 422
    assert (await http.post("/tasks", content=b"{not json")).status_code == 422
    bad_key = await http.post("/tasks", json={"input": "x", "result_key": "#"})
    assert bad_key.status_code == 422
    assert (await http.get("/tasks/x/result", params={"wait": -1})).status_code == 422
    assert (await http.post("/process_message", content=b"garbage")).status_code == 422

    first = await http.post("/tasks", json={"input": "x", "task_id": "fixed-id"})
    assert first.status_code == 200
    duplicate = await http.post("/tasks", json={"input": "x", "task_id": "fixed-id"})
    assert duplicate.status_code == 409


async def test_cancel_and_process_message_routes(
    served: tuple[ControlPlaneServer, httpx.AsyncClient],
) -> None:
    control_plane, http = served
    worker = Worker(control_plane.message_queue)
    await worker.start()
    task_id = (await http.post("/tasks", json={"input": "slow"})).json()["task_id"]
    [step_message] = await worker.steps.wait_for(1)
    cancelled = await http.post(f"/tasks/{task_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    # A late result over HTTP (as a remote consumer would post it) is recorded, not acted on.
    step = TaskDefinition.model_validate(step_message.data)
    posted = await http.post("/process_message", content=completion(step, "late").encode())
    assert posted.status_code == 200
    record = await control_plane.get_task(task_id)
    assert record.status is TaskStatus.CANCELLED
    assert record.steps[0].result is not None and record.steps[0].result.result == "late"
    result = (await http.get(f"/tasks/{task_id}/result")).json()
    assert result["error"] == "cancelled"


async def test_duplicate_completion_is_ignored(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    # prefetch=1: the control plane handles its messages one by one, in order.
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["worker"]), prefetch=1)
    await control_plane.start(persist=False)
    consuming = asyncio.create_task((await control_plane.register_to_message_queue())())
    worker = Worker(queue)
    await worker.start()
    human = Collector()
    human_task = asyncio.create_task((await queue.register_consumer(human.consumer("human")))())

    record = await control_plane.create_task("once")
    [step_message] = await worker.steps.wait_for(1)
    await worker.answer(step_message, "first")
    await worker.answer(step_message, "second (a redelivery)")
    # A marker behind the duplicate: an invalid result is dead-lettered once it is handled.
    await queue.publish(
        QueueMessage(type="control_plane", action=ActionTypes.COMPLETED_TASK, data={"x": 1})
    )
    [marker] = await queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
    assert "invalid payload" in marker.reason and "task_id" in marker.reason

    finished = await control_plane.get_task(record.task_id)
    assert finished.result is not None and finished.result.result == "first"
    assert len(finished.steps) == 1
    await human.wait_for(1)
    assert [TaskResult.model_validate(m.data).result for m in human.messages] == ["first"]
    await control_plane.close()
    human_task.cancel()
    consuming.cancel()


async def test_concurrent_results_of_one_task_are_all_recorded(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    names = [f"worker_{i}" for i in range(5)]
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(names), prefetch=10)
    await control_plane.start(persist=False)
    consuming = asyncio.create_task((await control_plane.register_to_message_queue())())
    workers = [Worker(queue, name) for name in names]
    for worker in workers:
        await worker.start()

    record = await control_plane.create_task("fan out")
    steps = [(await worker.steps.wait_for(1))[0] for worker in workers]
    await asyncio.gather(
        *(worker.answer(step, worker.name) for worker, step in zip(workers, steps, strict=True))
    )
    finished = await control_plane.wait_for_task(record.task_id, timeout=DEADLINE)
    assert finished.status is TaskStatus.COMPLETED
    assert finished.result is not None
    assert sorted(finished.result.result.split(" | ")) == names
    assert all(step.result is not None for step in finished.steps)
    await control_plane.close()
    consuming.cancel()


@pytest.mark.rabbitmq
async def test_served_control_plane_keeps_tasks_and_services_across_a_restart(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    queue = await rabbitmq_factory()
    first = ControlPlaneServer(
        queue, FanOutOrchestrator(["worker"]), SqliteStateStore(path), port=0
    )
    serving = await serve(first)
    async with httpx.AsyncClient(base_url=first.url) as http:
        await http.post("/services/register", json={"service_name": "worker", "description": "w"})
        task_id = (await http.post("/tasks", json={"input": "survive"})).json()["task_id"]
    await queue.declare_queue("worker")
    record = await first.get_task(task_id)
    assert record.status is TaskStatus.RUNNING  # its step waits in the worker's queue
    await stop(first, serving)

    second_queue = await rabbitmq_factory()
    second = ControlPlaneServer(
        second_queue, FanOutOrchestrator(["worker"]), SqliteStateStore(path), port=0
    )
    serving = await serve(second)
    async with httpx.AsyncClient(base_url=second.url) as http:
        assert [s["service_name"] for s in (await http.get("/services")).json()] == ["worker"]
        assert (await http.get(f"/tasks/{task_id}")).json()["status"] == "running"
        # The step published before the restart is still in the durable queue.
        worker = Worker(second_queue)
        await worker.start()
        [step_message] = await worker.steps.wait_for(1)
        await worker.answer(step_message, "survived")
        result = await http.get(f"/tasks/{task_id}/result", params={"wait": DEADLINE})
        assert result.json()["result"] == "survived"
    await stop(second, serving)


async def test_concurrent_starts_open_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README runs `launch_server()` as a task and awaits `register_to_message_queue()`
    at once: both start the control plane, which must open its store once, not race two
    stores onto one file (CI saw that fail on the schema row)."""
    opened: list[SqliteStateStore] = []
    real_open = SqliteStateStore.open

    async def counting_open(self: SqliteStateStore) -> None:
        opened.append(self)
        await real_open(self)

    monkeypatch.setattr(SqliteStateStore, "open", counting_open)
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator(["worker"]), str(tmp_path / "cp.db"), port=0
    )
    serving = asyncio.create_task(control_plane.launch_server())
    await control_plane.register_to_message_queue()
    await control_plane.wait_until_serving()
    manager = control_plane.manager
    await asyncio.gather(*(control_plane.start() for _ in range(3)))
    assert control_plane.manager is manager
    assert len(opened) == 1
    await stop(control_plane, serving)


async def test_steps_saved_but_never_published_are_sent_on_start(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """The original lost tasks to a publish-before-save race; here a crash between saving
    a step and publishing it is repaired when the control plane starts again."""
    queue = await queue_factory()
    store = SqliteStateStore(tmp_path / "crashed.db")
    crashed = TaskRecord(
        task_id="interrupted-task",
        input="interrupted",
        status=TaskStatus.RUNNING,
        state={"pending": ["step-1"], "results": {}},
        steps=[StepRecord(step_id="step-1", service="worker")],
    )
    await TaskRepository(store).insert(crashed)
    definition = crashed.definition

    worker = Worker(queue)
    await worker.start()
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["worker"]), store)
    await control_plane.start()
    consuming = asyncio.create_task((await control_plane.register_to_message_queue())())
    [resent] = await worker.steps.wait_for(1)
    assert TaskDefinition.model_validate(resent.data).step_id == "step-1"
    await worker.answer(resent, "recovered")
    finished = await control_plane.wait_for_task(definition.task_id, timeout=DEADLINE)
    assert finished.result is not None and finished.result.result == "recovered"
    assert finished.steps[0].published is True
    await control_plane.close()
    consuming.cancel()


async def test_orchestrator_failure_fails_the_task_with_its_reason(
    queue_factory: QueueFactory,
) -> None:
    class Broken(FanOutOrchestrator):
        async def get_next_messages(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the model is down")

    queue = await queue_factory()
    control_plane = ControlPlaneServer(queue, Broken(["worker"]))
    await control_plane.start(persist=False)
    record = await control_plane.create_task("doomed")
    finished = await control_plane.wait_for_task(record.task_id, timeout=DEADLINE)
    assert finished.status is TaskStatus.FAILED
    assert finished.error is not None and "RuntimeError: the model is down" in finished.error
    await control_plane.close()


async def test_registering_a_service_in_process(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["worker"]))
    await control_plane.start(persist=False)
    await control_plane.register_service(ServiceDefinition(service_name="w", description="d"))
    assert [s.service_name for s in await control_plane.list_services()] == ["w"]
    await control_plane.close()


async def test_api_key_protects_every_route_but_health(tmp_path: Path) -> None:
    control_plane = ControlPlaneServer(
        SimpleMessageQueue(),
        FanOutOrchestrator(["worker"]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
        api_key="s3cret",
    )
    task = await serve(control_plane)
    async with httpx.AsyncClient(base_url=control_plane.url) as http:
        assert (await http.get("/health")).status_code == 200
        for method, path in [
            ("GET", "/"),
            ("GET", "/tasks"),
            ("POST", "/tasks"),
            ("POST", "/tasks/stream"),
            ("GET", "/services"),
            ("GET", "/events"),
        ]:
            refused = await http.request(method, path, json={"input": "x"})
            assert refused.status_code == 401, path
            assert "API key" in refused.json()["detail"]
        wrong = await http.get("/tasks", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bearer = await http.get("/tasks", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        header = await http.get("/tasks", headers={"X-API-Key": "s3cret"})
        assert header.status_code == 200
    await stop(control_plane, task)


async def test_event_stream_pushes_task_and_service_changes(
    served: tuple[ControlPlaneServer, httpx.AsyncClient],
) -> None:
    control_plane, http = served
    worker = Worker(control_plane.message_queue)
    await worker.start()
    seen: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def listen() -> None:
        async with http.stream("GET", "/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append(event)
                    if event["kind"] == "task" and event["task"]["status"] == "completed":
                        done.set()
                        return

    connected = asyncio.Event()
    listener = asyncio.create_task(listen())
    async with asyncio.timeout(DEADLINE):
        await connected.wait()
    await http.post("/services/register", json={"service_name": "worker", "description": "w"})
    task_id = (await http.post("/tasks", json={"input": "watch me"})).json()["task_id"]
    [step] = await worker.steps.wait_for(1)
    await worker.answer(step, "watched")
    async with asyncio.timeout(DEADLINE):
        await done.wait()
    await listener
    assert seen[0] == {
        "kind": "service",
        "action": "registered",
        "service": {
            "service_name": "worker",
            "description": "w",
            "prompt": [],
            "host": None,
            "port": None,
            "kind": None,
            "step_timeout": None,
            "workflow": None,
        },
        "task": None,
        "service_name": None,
    }
    statuses = [e["task"]["status"] for e in seen if e["kind"] == "task"]
    assert statuses[0] == "pending" and statuses[-1] == "completed" and "running" in statuses
    assert {e["task"]["task_id"] for e in seen if e["kind"] == "task"} == {task_id}


async def test_task_ids_and_inputs_are_validated(
    served: tuple[ControlPlaneServer, httpx.AsyncClient],
) -> None:
    _, http = served
    assert (await http.post("/tasks", json={"input": ""})).status_code == 422
    assert (await http.post("/tasks", json={"input": "x", "task_id": "a/b"})).status_code == 422
    assert (await http.post("/tasks", json={"input": "x", "task_id": "a b"})).status_code == 422


async def test_slow_event_subscriber_gets_a_resync_instead_of_a_backlog() -> None:
    from llama_agents.control_plane.events import ControlPlaneEvent, EventHub

    hub = EventHub(backlog=3)
    async with hub.subscribe() as events:
        for name in ["a", "b", "c", "d", "e"]:
            hub.publish(ControlPlaneEvent(kind="service", action="deregistered", service_name=name))
        got = [events.get_nowait() for _ in range(events.qsize())]
        hub.close()
        closing = events.get_nowait()
    assert [(e.kind, e.service_name) for e in got if e is not None] == [
        ("resync", None),
        ("d", None)[0:0] or ("service", "d"),
        ("service", "e"),
    ]
    assert closing is None


async def test_tool_services_are_not_offered_to_the_orchestrator() -> None:
    from llama_agents.orchestrators.base import BaseOrchestrator

    offered: list[list[str]] = []

    class Spy(BaseOrchestrator):
        async def get_next_messages(self, task_def: Any, tools: Any, state: Any) -> Any:
            offered.append([tool.metadata.name for tool in tools])
            from llama_agents.orchestrators import final_message

            return [final_message(task_def, "done")], state

        async def add_result_to_state(self, result: Any, state: Any) -> Any:
            return state

    control_plane = ControlPlaneServer(SimpleMessageQueue(), Spy())
    await control_plane.start(persist=False)
    await control_plane.register_service(
        ServiceDefinition(service_name="agent", description="a", kind="agent")
    )
    await control_plane.register_service(
        ServiceDefinition(service_name="tools", description="t", kind="tool")
    )
    record = await control_plane.create_task("hi")
    await control_plane.wait_for_task(record.task_id, timeout=DEADLINE)
    assert offered == [["agent"]]
    await control_plane.close()
