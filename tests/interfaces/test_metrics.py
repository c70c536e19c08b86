"""`GET /metrics` (Prometheus): a scripted run on RabbitMQ moves the counters by exactly what
it did; histograms observe; no label is a task id; the API key guards it unless open."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core.llms import ChatMessage
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from llama_agents import ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import SqliteStateStore
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.metrics import FabricMetrics, ServiceMetrics, metrics_server, reason_label, render
from llama_agents.services.base import BaseService
from tests.conftest import QueueFactory
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.llm_server import (
    RuleBook,
    ScriptedLLMServer,
    Text,
    scripted_llm_fixture,  # noqa: F401
)
from tests.support.orchestrators import FanOutOrchestrator

KEY = "metrics-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVICE = "scripted"


class ScriptedService(BaseService):
    """Echoes; fails on "fail"; holds "block" until released."""

    def __init__(self, queue: BaseMessageQueue) -> None:
        super().__init__(queue, SERVICE, "a scripted service", port=0)
        self.blocked = asyncio.Event()
        self.release = asyncio.Event()

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        if task.input == "fail":
            raise RuntimeError("scripted failure")
        if task.input == "block":
            self.blocked.set()
            await self.release.wait()
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=f"{task.input} ok")


def samples(text: str) -> dict[str, list[Sample]]:
    """Every sample of the exposition, by metric family name."""
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, []).extend(family.samples)
    return found


def value(found: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    """The one sample named `sample` with exactly `labels` (0 when absent)."""
    family = next((f for f in found.values() for s in f if s.name == sample), [])
    hits = [s.value for s in family if s.name == sample and s.labels == labels]
    assert len(hits) <= 1, (sample, labels, hits)
    return hits[0] if hits else 0.0


def total(found: dict[str, list[Sample]], sample: str) -> float:
    return sum(s.value for f in found.values() for s in f if s.name == sample)


def label_values(found: dict[str, list[Sample]]) -> set[str]:
    return {v for f in found.values() for s in f for v in s.labels.values()}


@pytest.fixture
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Services read the system's key from the environment."""
    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", KEY)
    monkeypatch.delenv("LLAMA_AGENTS_METRICS_OPEN", raising=False)
    yield


@asynccontextmanager
async def running(service: BaseService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.launch_server())
    try:
        await service.wait_until_serving(DEADLINE)
        yield task
    finally:
        service.stop_server()
        await asyncio.wait_for(task, DEADLINE)


async def run_task(client: httpx.AsyncClient, text: str, service: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": text}
    if service is not None:
        body["service"] = service
    created = (await client.post("/tasks", json=body)).raise_for_status().json()
    response = await client.get(f"/tasks/{created['task_id']}/result", params={"wait": DEADLINE})
    assert response.status_code == 200, response.text
    return {"task_id": created["task_id"], **response.json()}


@pytest.mark.rabbitmq
async def test_a_scripted_run_moves_the_counters_by_exactly_what_it_did(
    rabbitmq_factory: QueueFactory, tmp_path: Path, api_key_env: None
) -> None:
    cp_queue = await rabbitmq_factory()
    control_plane = ControlPlaneServer(
        cp_queue,
        FanOutOrchestrator([SERVICE]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
    )
    serving = await serve(control_plane)
    service = ScriptedService(await rabbitmq_factory())
    task_ids: list[str] = []
    try:
        async with (
            running(service),
            httpx.AsyncClient(base_url=control_plane.url, headers=AUTH, timeout=30) as client,
            httpx.AsyncClient(base_url=service.url, timeout=30) as service_http,
        ):
            await service.register_to_control_plane(control_plane.url)
            # 5 completed (4 sent to the service, 1 routed by the orchestrator), 1 failed.
            for text, target in [("a", SERVICE)] * 4 + [("b", None), ("fail", SERVICE)]:
                result = await run_task(client, text, target)
                task_ids.append(result["task_id"])
                assert (result["error"] is None) == (text != "fail"), result
            # 1 cancelled while its step runs: the service counts it in flight.
            created = await client.post("/tasks", json={"input": "block", "service": SERVICE})
            blocked_id = created.raise_for_status().json()["task_id"]
            task_ids.append(blocked_id)
            async with asyncio.timeout(DEADLINE):
                await service.blocked.wait()
            during = samples((await service_http.get("/metrics", headers=AUTH)).text)
            assert value(during, "llama_agents_steps_in_flight", service=SERVICE) == 1
            cancel = await client.post(f"/tasks/{blocked_id}/cancel")
            assert cancel.json()["status"] == "cancelled"
            service.release.set()
            # 1 poison message, dead-lettered by the service's consumer.
            await cp_queue.publish_raw(b"\x00 not a message", SERVICE)
            [dead] = await cp_queue.fetch_dead_letters(wait_for=1, timeout=DEADLINE)
            assert dead.routing_key == SERVICE

            # The API key guards both; /health stays open.
            assert (await service_http.get("/metrics")).status_code == 401
            assert (
                await client.get("/metrics", headers={"Authorization": "Bearer x"})
            ).status_code == 401
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            cp = samples(response.text)
        # The service stopped: whatever it was settling is settled.
        svc = samples(render([service.metrics, service.message_queue.metrics]).decode())
    finally:
        await stop(control_plane, serving)

    # The control plane: tasks by service (direct) or orchestrator (routed), and status.
    direct = {"service": SERVICE, "orchestrator": ""}
    routed = {"service": "", "orchestrator": "FanOutOrchestrator"}
    assert value(cp, "llama_agents_tasks_created_total", **direct) == 6
    assert value(cp, "llama_agents_tasks_created_total", **routed) == 1
    finished = "llama_agents_tasks_finished_total"
    assert value(cp, finished, **direct, status="completed") == 4
    assert value(cp, finished, **routed, status="completed") == 1
    assert value(cp, finished, **direct, status="failed") == 1
    assert value(cp, finished, **direct, status="cancelled") == 1
    assert total(cp, finished) == 7
    assert total(cp, "llama_agents_task_duration_seconds_count") == 7
    assert value(cp, "llama_agents_task_duration_seconds_count", **direct, status="failed") == 1
    assert (
        value(cp, "llama_agents_orchestrator_decision_duration_seconds_count",
              orchestrator="FanOutOrchestrator") == 2
    )  # fmt: skip
    assert value(cp, "llama_agents_runs_waiting_for_input") == 0
    assert value(cp, "llama_agents_event_stream_subscribers", stream="task") == 0
    assert total(cp, "llama_agents_publish_confirm_duration_seconds_count") >= 8
    assert total(cp, "llama_agents_dead_letters_total") == 0

    # The service: 7 steps answered (the cancelled one too, late), 1 of them failed.
    assert value(svc, "llama_agents_steps_total", service=SERVICE, outcome="completed") == 6
    assert value(svc, "llama_agents_steps_total", service=SERVICE, outcome="failed") == 1
    assert value(svc, "llama_agents_step_duration_seconds_count", service=SERVICE) == 7
    assert value(svc, "llama_agents_steps_in_flight", service=SERVICE) == 0
    assert value(svc, "llama_agents_dead_letters_total", queue=SERVICE, reason="undecodable") == 1
    assert total(svc, "llama_agents_dead_letters_total") == 1
    assert total(svc, "llama_agents_redeliveries_total") == 0
    assert total(svc, "llama_agents_publish_confirm_duration_seconds_count") >= 7

    # Bounded labels: no task id anywhere.
    assert len(task_ids) == 7
    assert not label_values(cp).union(label_values(svc)).intersection(task_ids)


async def test_metrics_open_needs_no_key_and_the_rest_still_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", KEY)
    monkeypatch.setenv("LLAMA_AGENTS_METRICS_OPEN", "1")
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator([SERVICE]), SqliteStateStore(tmp_path / "cp.db"), port=0
    )
    serving = await serve(control_plane)
    service = ScriptedService(queue)
    try:
        async with running(service), httpx.AsyncClient(timeout=30) as http:
            for base in (control_plane.url, service.url):
                response = await http.get(f"{base}/metrics")
                assert response.status_code == 200, base
                assert "llama_agents_publish_confirm_duration_seconds" in response.text
                assert (await http.get(f"{base}/")).status_code == 401
            cp = samples((await http.get(f"{control_plane.url}/metrics")).text)
            assert "llama_agents_tasks_created" in cp
    finally:
        await stop(control_plane, serving)


async def test_closed_by_default_and_open_by_argument(tmp_path: Path, api_key_env: None) -> None:
    closed = ControlPlaneServer(SimpleMessageQueue(), FanOutOrchestrator([SERVICE]), port=0)
    opened = ControlPlaneServer(
        SimpleMessageQueue(), FanOutOrchestrator([SERVICE]), port=0, metrics_open=True
    )
    assert not closed.metrics_open and opened.metrics_open
    for server, status in ((closed, 401), (opened, 200)):
        task = await serve(server)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                assert (await http.get(f"{server.url}/metrics")).status_code == status
                assert (await http.get(f"{server.url}/tasks")).status_code == 401
        finally:
            await stop(server, task)


async def test_a_bare_consumer_serves_its_queue_metrics(api_key_env: None) -> None:
    metrics = FabricMetrics(enabled=True)
    metrics.publish_confirm.observe(0.002)
    server = metrics_server(metrics, api_key=KEY)
    serving = asyncio.create_task(server.serve())
    try:
        port = await server.wait_started(DEADLINE)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert (await http.get("/metrics")).status_code == 401
            found = samples((await http.get("/metrics", headers=AUTH)).text)
    finally:
        server.stop()
        await asyncio.wait_for(serving, DEADLINE)
    assert value(found, "llama_agents_publish_confirm_duration_seconds_count") == 1


async def test_llm_tokens_count_for_the_service_whose_step_called(
    scripted_llm: ScriptedLLMServer,
) -> None:
    scripted_llm.respond = RuleBook(default=Text("Hi there!"))
    llm = scripted_llm.llm()
    mine, other = ServiceMetrics("writer", enabled=True), ServiceMetrics("idle", enabled=True)
    with mine.step():
        response = await llm.achat([ChatMessage(role="user", content="Hello?")])
    await llm.achat([ChatMessage(role="user", content="outside any step")])  # not counted
    usage = response.additional_kwargs
    found = samples(render([mine]).decode())
    tokens = "llama_agents_llm_tokens_total"
    model = response.raw.model
    assert (
        value(found, tokens, service="writer", model=model, kind="input") == usage["prompt_tokens"]
    )
    assert (
        value(found, tokens, service="writer", model=model, kind="output")
        == usage["completion_tokens"]
    )
    assert total(found, tokens) == usage["prompt_tokens"] + usage["completion_tokens"]
    assert total(samples(render([other]).decode()), tokens) == 0


def test_dead_letter_reasons_map_to_a_few_label_values() -> None:
    assert reason_label("undecodable: bad json") == "undecodable"
    assert reason_label("invalid payload: missing task_id") == "invalid_payload"
    assert reason_label("not retryable (NonRetryableMessageError): no") == "rejected"
    assert reason_label("handler failed: RuntimeError: boom") == "handler_failed"
    assert reason_label("redelivered 20 times without being acknowledged") == "redelivery_limit"
    assert reason_label("something new") == "other"


async def test_switched_off_there_is_no_route_and_nothing_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLAMA_AGENTS_METRICS", "0")
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)
    assert os.environ["LLAMA_AGENTS_METRICS"] == "0"
    service = ScriptedService(SimpleMessageQueue())
    assert not service.metrics.enabled
    with service.metrics.step():
        service.metrics.answered(failed=False)
    assert render([service.metrics]) == b""
    async with running(service), httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{service.url}/metrics")).status_code == 404


def test_publish_hook_times_only_when_enabled() -> None:
    off = FabricMetrics(enabled=False)

    async def confirmed() -> str:
        return "ok"

    assert asyncio.run(off.timed_publish(confirmed())) == "ok"
    on = FabricMetrics(enabled=True)
    assert asyncio.run(on.timed_publish(confirmed())) == "ok"
    found = samples(render([on]).decode())
    assert value(found, "llama_agents_publish_confirm_duration_seconds_count") == 1
