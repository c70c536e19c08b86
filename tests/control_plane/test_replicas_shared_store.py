"""Two control planes on one PostgreSQL store and one RabbitMQ exchange, both active.

A task created through one is streamed, answered, long-polled and listed through the other;
the service registry is one; a result may reach either. The changes travel as PostgreSQL
notifications, not by polling: a stream on the other replica moves on within the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    RabbitMQMessageQueue,
    TaskStatus,
    WorkflowService,
)
from llama_agents.control_plane.state import open_state_store
from llama_agents.control_plane.task_repository import TaskRepository
from llama_agents.messages.records import StepRecord, TaskRecord
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE, Collector
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.postgres import PostgresSchemas
from tests.support.streams import of_type, read_ndjson, read_sse
from tests.support.workflows import Review


@pytest.fixture
def postgres_state_url(postgres: PostgresSchemas) -> str:
    """The state URL of this test's own PostgreSQL schema."""
    return f"{postgres.url}?schema={postgres.schema}"


pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]


@dataclass
class Pair:
    """Two served control planes on one store, and an HTTP client for each."""

    one: ControlPlaneServer
    two: ControlPlaneServer
    http_one: httpx.AsyncClient
    http_two: httpx.AsyncClient
    queue: RabbitMQMessageQueue


@asynccontextmanager
async def replicas(amqp_url: str, exchange: str, state_url: str) -> AsyncIterator[Pair]:
    async with AsyncExitStack() as stack:
        queue = RabbitMQMessageQueue(url=amqp_url, exchange_name=exchange)
        stack.push_async_callback(queue.close)
        planes = []
        for _ in range(2):
            plane = ControlPlaneServer(
                queue,
                FanOutOrchestrator([]),
                open_state_store(state_url, persist=True),
                port=0,
                replica_interval=0.2,
                replica_ttl=1.0,
            )
            # Served, each consumes `control_plane` too: a result may reach either.
            serving = await serve(plane)
            stack.push_async_callback(stop, plane, serving)
            planes.append(plane)
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=p.url, timeout=30))
            for p in planes
        ]
        yield Pair(planes[0], planes[1], clients[0], clients[1], queue)


async def test_a_task_created_on_one_replica_is_streamed_answered_and_read_on_the_other(
    amqp_url: str, exchange_name: str, postgres_state_url: str
) -> None:
    async with replicas(amqp_url, exchange_name, postgres_state_url) as pair:
        review = Review()
        service = WorkflowService(review, pair.queue, service_name="review", event_coalesce_s=0)
        await service.launch_local()
        try:
            # Registered through one, known to both (one registry).
            await pair.one.register_service(service.service_definition)
            listed = (await pair.http_two.get("/services")).json()
            assert "review" in {s["service_name"] for s in listed}

            created = await pair.http_one.post(
                "/tasks", json={"input": "release notes", "service": "review"}
            )
            assert created.status_code == 200, created.text
            task_id = created.json()["task_id"]

            # Streamed through the other replica, as the run goes.
            first = await asyncio.wait_for(
                read_sse(pair.http_two, task_id, until=of_type("InputRequiredEvent")), DEADLINE
            )
            assert [(e["sequence"], e["type"]) for e in first] == [
                (1, "Progress"),
                (2, "InputRequiredEvent"),
            ]
            waiting = (await pair.http_two.get(f"/tasks/{task_id}")).json()
            assert waiting["status"] == TaskStatus.WAITING_FOR_INPUT.value

            # A long poll on replica one, the answer through replica two, a stream on one.
            polled = asyncio.create_task(
                pair.http_one.get(f"/tasks/{task_id}/result", params={"wait": DEADLINE})
            )
            rest = asyncio.create_task(read_sse(pair.http_one, task_id, last_event_id=2))
            answered = await pair.http_two.post(
                f"/tasks/{task_id}/events",
                json={"type": "HumanResponseEvent", "data": {"response": "yes"}},
            )
            assert answered.status_code == 202, answered.text

            result = await asyncio.wait_for(polled, DEADLINE)
            assert result.status_code == 200, result.text
            assert result.json()["data"]["result"] == {
                "draft": "a note about release notes",
                "approved": True,
            }
            events = await asyncio.wait_for(rest, DEADLINE)
            assert events[-1]["type"] == "TaskFinished"
            assert [e["sequence"] for e in events] == list(range(3, 3 + len(events)))

            # Both replicas read one log, gap-free, ending once.
            for http in (pair.http_one, pair.http_two):
                log = await read_ndjson(http, task_id)
                assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
                assert [e["type"] for e in log].count("TaskFinished") == 1
            assert review.calls == {"draft": 1, "ask": 1, "decide": 1}

            # The SDK on replica two streams the finished task's events from the start.
            async with AsyncLlamaAgentsClient(pair.two.url) as client:
                streamed = [e async for e in client.stream_events(task_id)]
            assert streamed[-1].type == "TaskFinished"

            # Exactly one replica holds the recovery lease.
            statuses = [
                (await http.get("/")).json()["replica"] for http in (pair.http_one, pair.http_two)
            ]
            assert sorted(s["holds_recovery_lease"] for s in statuses) == [False, True]
            assert statuses[0]["id"] != statuses[1]["id"]
        finally:
            await service.deregister_from_message_queue()


async def test_tasks_created_on_both_replicas_all_finish_with_one_result_each(
    amqp_url: str, exchange_name: str, postgres_state_url: str
) -> None:
    """Results land on either replica (they share the queue): none is taken for an
    unknown step, none is lost, none is recorded twice."""
    async with replicas(amqp_url, exchange_name, postgres_state_url) as pair:
        review = Review()
        service = WorkflowService(review, pair.queue, service_name="review", event_coalesce_s=0)
        await service.launch_local()
        try:
            await pair.two.register_service(service.service_definition)
            ids = []
            for index in range(20):
                http = pair.http_one if index % 2 else pair.http_two
                created = await http.post(
                    "/tasks", json={"input": f"note {index}", "service": "review"}
                )
                assert created.status_code == 200, created.text
                ids.append(created.json()["task_id"])
            for index, task_id in enumerate(ids):
                await pair.one.wait_for_status(
                    task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE
                )
                http = pair.http_two if index % 2 else pair.http_one
                answered = await http.post(
                    f"/tasks/{task_id}/events",
                    json={"type": "HumanResponseEvent", "data": {"response": "yes"}},
                )
                assert answered.status_code == 202, answered.text
            for task_id in ids:
                done = await pair.two.wait_for_task(task_id, timeout=DEADLINE)
                assert done.status is TaskStatus.COMPLETED, done.error
            assert review.calls == {"draft": 20, "ask": 20, "decide": 20}
            for task_id in ids:
                log = await read_ndjson(pair.http_one, task_id)
                assert [e["type"] for e in log].count("TaskFinished") == 1
        finally:
            await service.deregister_from_message_queue()


async def test_a_dead_replicas_unpublished_step_is_sent_once_by_the_lease_holder(
    amqp_url: str, exchange_name: str, postgres_state_url: str
) -> None:
    """A replica died between saving a step and publishing it: of the two live replicas,
    only the one holding the recovery lease publishes it, once."""
    store = open_state_store(postgres_state_url, persist=True)
    async with store:
        record = TaskRecord(
            task_id="left-behind",
            input="what the dead replica saved",
            service="worker",
            status=TaskStatus.RUNNING,
            handled_by="a-replica-that-died",
        )
        record.steps.append(StepRecord(step_id="step-1", service="worker"))
        await TaskRepository(store).insert(record)

    collector = Collector()
    async with replicas(amqp_url, exchange_name, postgres_state_url) as pair:
        start = await pair.queue.register_consumer(collector.consumer("worker"))
        consuming = asyncio.create_task(start())
        try:
            # Recovery may have published before the consumer came: the queue kept it.
            received = await collector.wait_for(1)
            assert received[0].data["step_id"] == "step-1"
            # The holder marks it published once the broker confirmed it; both replicas see it.
            for plane in (pair.one, pair.two):
                await plane.manager.wait_until(
                    "left-behind", lambda task: task.steps[0].published, DEADLINE
                )
            statuses = [
                (await http.get("/")).json()["replica"] for http in (pair.http_one, pair.http_two)
            ]
            assert sorted(s["holds_recovery_lease"] for s in statuses) == [False, True]
            # Both replicas have beaten since (a beat is 0.2 s): nobody sent it again.
            for plane in (pair.one, pair.two):
                assert plane._replicas is not None
                await plane._replicas.beat()
            assert len(collector.messages) == 1
        finally:
            consuming.cancel()
