"""LlamaIndex's own `WorkflowClient` (llama-agents-client) drives our control plane on RabbitMQ:
every public method, a human-input round trip, a stream resumed after a disconnect, the API key
as a bearer token, handlers continued, and the errors the workflow server answers with."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_agents.client import WorkflowClient
from workflows.events import HumanResponseEvent, StartEvent

from llama_agents import ControlPlaneServer, WorkflowService
from llama_agents.control_plane import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.workflow_client import Boom, Greet, Tally
from tests.support.workflows import Review, Slow

pytestmark = pytest.mark.rabbitmq

KEY = "s3cret"
PREFIX = "/workflow-server"


@dataclass
class System:
    control_plane: ControlPlaneServer
    http: httpx.AsyncClient
    client: WorkflowClient
    slow: Slow

    @property
    def url(self) -> str:
        return self.control_plane.url


@pytest.fixture
async def system(rabbitmq_factory: QueueFactory, tmp_path: Path) -> AsyncIterator[System]:
    queue = await rabbitmq_factory()
    control_plane = ControlPlaneServer(
        queue,
        FanOutOrchestrator([]),
        SqliteStateStore(tmp_path / "cp.sqlite3"),
        port=0,
        api_key=KEY,
        workflow_api_prefix=PREFIX,
    )
    serving = await serve(control_plane)
    slow = Slow()
    services = [
        WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0),
        WorkflowService(Greet(), queue, service_name="greet"),
        WorkflowService(Tally(), queue, service_name="tally"),
        WorkflowService(Boom(), queue, service_name="boom"),
        WorkflowService(slow, queue, service_name="slow"),
    ]
    for service in services:
        await service.launch_local()
        await control_plane.register_service(service.service_definition)
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        async with httpx.AsyncClient(base_url=control_plane.url, headers=headers, timeout=30) as h:
            yield System(control_plane, h, WorkflowClient(httpx_client=h), slow)
    finally:
        slow.gate.set()
        for service in services:
            await service.deregister_from_message_queue()
        await stop(control_plane, serving)


async def events_until(client: WorkflowClient, handler_id: str, last: str, **kw: Any) -> list[Any]:
    """The handler's events up to the first of type `last` (bounded by the deadline)."""
    seen = []
    stream = client.get_workflow_events(handler_id, **kw)
    async with _deadline():
        async for event in stream:
            seen.append(event)
            if event.type == last:
                break
    await stream.aclose()
    return seen


def _deadline() -> Any:
    import asyncio

    return asyncio.timeout(DEADLINE)


async def test_describes_the_workflows_it_serves(system: System) -> None:
    client = system.client
    assert (await client.is_healthy()).status == "healthy"
    names = (await client.list_workflows()).workflows
    assert set(names) == {"review", "greet", "tally", "boom", "slow"}
    schema = await client.get_workflow_schema("review")
    assert schema.start["title"] == "StartEvent" and schema.stop["title"] == "StopEvent"
    events = (await client.get_workflow_events_schema("review")).events
    assert {"Drafted", "HumanResponseEvent", "InputRequiredEvent"} <= {e["title"] for e in events}
    graph = (await client.get_workflow_graph("review")).graph
    assert {"StartEvent", "Drafted", "StopEvent"} <= {n.id for n in graph.nodes}
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await client.get_workflow_schema("nope")
    assert missing.value.response.status_code == 404


async def test_the_api_key_guards_it_and_a_prefix_serves_it_too(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.url) as anonymous:
        assert (await anonymous.get("/health")).json()["status"] == "healthy"  # probes: open
        assert (await anonymous.get("/workflows")).status_code == 401
        assert (await anonymous.get(f"{PREFIX}/workflows")).status_code == 401
        with pytest.raises(httpx.HTTPStatusError):
            await WorkflowClient(httpx_client=anonymous).list_workflows()
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=system.url + PREFIX, headers=headers) as prefixed:
        client = WorkflowClient(httpx_client=prefixed)
        assert (await client.is_healthy()).status == "healthy"
        done = await client.run_workflow("greet", start_event=StartEvent(name="Ada"))
        assert done.result is not None and done.result.value == {"result": "Hello, Ada!"}


async def test_run_workflow_waits_and_is_a_task_of_ours(system: System) -> None:
    client = system.client
    done = await client.run_workflow("greet", start_event={"name": "Ada"})
    assert done.status == "completed" and done.workflow_name == "greet"
    assert done.result is not None
    assert (done.result.type, done.result.value) == ("StopEvent", {"result": "Hello, Ada!"})
    assert done.result.qualified_name == "workflows.events.StopEvent"
    assert done.completed_at is not None and done.run_id == done.handler_id
    task = (await system.http.get(f"/tasks/{done.handler_id}")).json()
    assert (task["status"], task["service"]) == ("completed", "greet")
    assert (await client.get_result(done.handler_id)).status == "completed"
    legacy = await system.http.get(f"/results/{done.handler_id}")
    assert legacy.status_code == 200 and legacy.json()["result"] == "Hello, Ada!"


async def test_a_task_of_our_api_is_a_handler(system: System) -> None:
    created = await system.http.post(
        "/tasks", json={"input": "hi", "service": "greet", "start_event": {"name": "Bo"}}
    )
    task_id = created.json()["task_id"]
    done = await system.client.wait_for_handler(task_id, timeout=DEADLINE, poll_interval=0.05)
    assert done.handler_id == task_id and done.result is not None
    assert done.result.value == {"result": "Hello, Bo!"}
    listed = await system.client.get_handlers(status=["completed"], workflow_name=["greet"])
    assert [h.handler_id for h in listed.handlers] == [task_id]
    assert (await system.client.get_handlers(workflow_name=["review"])).handlers == []


async def test_a_person_answers_through_send_event(system: System) -> None:
    client = system.client
    started = await client.run_workflow_nowait("review", start_event=StartEvent(input="cats"))
    assert started.status == "running" and started.result is None
    asked = await events_until(client, started.handler_id, "InputRequiredEvent")
    assert [e.type for e in asked] == ["Progress", "InputRequiredEvent"]
    assert asked[0].value == {"message": "drafting cats"}
    assert asked[1].value == {"_data": {"prefix": "Approve 'a note about cats'?"}}
    pending = await system.http.get(f"/handlers/{started.handler_id}")
    assert pending.status_code == 202 and pending.json()["status"] == "running"
    sent = await client.send_event(started.handler_id, HumanResponseEvent(response="yes"))
    assert sent.status == "sent"
    rest = await events_until(client, started.handler_id, "StopEvent", after_sequence=1)
    assert [e.type for e in rest] == ["StopEvent"], [e.value for e in rest]
    done = await client.wait_for_handler(started.handler_id, timeout=DEADLINE, poll_interval=0.05)
    assert done.result is not None
    assert done.result.value == {"result": {"draft": "a note about cats", "approved": True}}
    late = await system.http.post(
        f"/events/{started.handler_id}",
        json={"event": {"type": "HumanResponseEvent", "value": {"response": "no"}}},
    )
    assert late.status_code == 409
    drained = await system.http.get(
        f"/events/{started.handler_id}", params={"after_sequence": "now"}
    )
    assert drained.status_code == 204


async def test_a_stream_resumes_after_a_disconnect(system: System) -> None:
    client = system.client
    started = await client.run_workflow_nowait("review", start_event={"input": "dogs"})
    first = client.get_workflow_events(started.handler_id)
    async with _deadline():
        async for event in first:
            assert event.type == "Progress"
            break  # the client goes away after one event
    await first.aclose()
    assert first.last_sequence == 0
    rest = await events_until(
        client, started.handler_id, "InputRequiredEvent", after_sequence=first.last_sequence
    )
    assert [e.type for e in rest] == ["InputRequiredEvent"]
    # The same, raw: SSE ids are sequences, `Last-Event-ID` resumes, NDJSON without ids.
    async with system.http.stream(
        "GET",
        f"/events/{started.handler_id}",
        headers={"Last-Event-ID": "0"},
        params={"after_sequence": "-1"},
    ) as response:
        lines = []
        async with _deadline():
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    break
    assert lines[0] == "id: 1" and "InputRequiredEvent" in lines[1]
    await system.http.post(
        f"/events/{started.handler_id}",
        json={"event": {"type": "HumanResponseEvent", "value": {"response": "no"}}},
    )
    await client.wait_for_handler(started.handler_id, timeout=DEADLINE, poll_interval=0.05)
    ndjson = await system.http.get(
        f"/events/{started.handler_id}", params={"sse": "false", "after_sequence": "-1"}
    )
    types = [line.split('"type":"')[1].split('"')[0] for line in ndjson.text.splitlines()]
    assert types == ["Progress", "InputRequiredEvent", "StopEvent"]


async def test_heartbeats_keep_an_idle_stream_open(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_agents.control_plane.workflow_api import streams

    monkeypatch.setattr(streams, "HEARTBEAT_SECONDS", 0.05)
    started = await system.client.run_workflow_nowait("slow", start_event={"input": "x"})
    async with (
        system.http.stream(
            "GET", f"/events/{started.handler_id}", params={"after_sequence": "now"}
        ) as response,
        _deadline(),
    ):
        async for line in response.aiter_lines():
            if line:
                assert line == ": heartbeat"
                break


async def test_a_handler_id_continues_its_state_and_refuses_a_second_run(system: System) -> None:
    client = system.client
    first = await client.run_workflow("tally", handler_id="my-tally")
    assert first.handler_id == first.run_id == "my-tally"
    assert first.result is not None and first.result.value == {"result": 1}
    second = await client.run_workflow("tally", handler_id="my-tally")
    assert second.handler_id == "my-tally" and second.run_id != "my-tally"
    assert second.result is not None and second.result.value == {"result": 2}
    session = (await system.http.get("/sessions/my-tally")).json()
    assert session["tasks"] == ["my-tally", second.run_id]

    running = await client.run_workflow_nowait("slow", handler_id="busy")
    again = await system.http.post("/workflows/slow/run-nowait", json={"handler_id": "busy"})
    assert again.status_code == 409
    system.slow.gate.set()
    done = await client.wait_for_handler(running.handler_id, timeout=DEADLINE, poll_interval=0.05)
    assert done.status == "completed"


async def test_cancel_and_purge(system: System) -> None:
    client = system.client
    started = await client.run_workflow_nowait("slow", start_event={"input": "x"})
    assert (await client.cancel_handler(started.handler_id)).status == "cancelled"
    with pytest.raises(httpx.HTTPStatusError) as failed:
        await client.get_handler(started.handler_id)
    assert failed.value.response.status_code == 500
    assert failed.value.response.json()["status"] == "cancelled"
    events = await system.http.get(
        f"/events/{started.handler_id}", params={"sse": "false", "after_sequence": "-1"}
    )
    assert '"type":"WorkflowCancelledEvent"' in events.text
    again = await system.http.post(f"/handlers/{started.handler_id}/cancel")
    assert again.status_code == 404
    assert (await client.cancel_handler(started.handler_id, purge=True)).status == "deleted"
    assert (await system.http.get(f"/handlers/{started.handler_id}")).status_code == 404
    # Purged: its run, that run's event log and its session are gone from our API too.
    assert (await system.http.get(f"/tasks/{started.handler_id}")).status_code == 404
    assert (await system.http.get(f"/sessions/{started.handler_id}")).status_code == 404
    assert await system.control_plane.manager.store.read_events(started.handler_id) == []
    # The id is free again: a new handler may take it.
    again_started = await client.run_workflow_nowait(
        "slow", start_event={"input": "y"}, handler_id=started.handler_id
    )
    assert again_started.handler_id == started.handler_id
    await client.cancel_handler(started.handler_id)


async def test_a_failed_run(system: System) -> None:
    answer = await system.http.post("/workflows/boom/run", json={"start_event": {}})
    assert answer.status_code == 500
    body = answer.json()
    assert body["status"] == "failed" and "kaput" in body["error"] and body["result"] is None
    events = await system.http.get(
        f"/events/{body['handler_id']}", params={"sse": "false", "after_sequence": "-1"}
    )
    assert '"type":"WorkflowFailedEvent"' in events.text and "kaput" in events.text


async def test_bad_requests(system: System) -> None:
    http = system.http
    started = await system.client.run_workflow_nowait("review", start_event={"input": "x"})
    handler = started.handler_id
    unknown = await http.post(f"/events/{handler}", json={"event": {"type": "Nope", "value": {}}})
    assert unknown.status_code == 400 and "Nope" in unknown.json()["detail"]
    assert (await http.post(f"/events/{handler}", json={})).status_code == 400
    missing = {"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}
    assert (await http.post("/events/nobody", json=missing)).status_code == 404
    assert (await http.get("/handlers/nobody")).status_code == 404
    assert (await http.get("/events/nobody")).status_code == 404
    assert (await http.get(f"/events/{handler}", params={"after_sequence": "x"})).status_code == 400
    assert (await http.post("/workflows/nope/run-nowait", json={})).status_code == 404
    wrong_start = {"start_event": {"type": "Drafted", "value": {"text": "x"}}}
    assert (await http.post("/workflows/review/run-nowait", json=wrong_start)).status_code == 400
    context = {"start_event": {}, "context": {"state": {}}}
    assert (await http.post("/workflows/review/run-nowait", json=context)).status_code == 400
    assert (await http.post("/workflows/review/run", content=b"{oops")).status_code == 400


async def test_a_qualified_name_is_never_imported(system: System) -> None:
    http = system.http
    started = await system.client.run_workflow_nowait("review", start_event={"input": "x"})
    await events_until(system.client, started.handler_id, "InputRequiredEvent")
    unknown = {"event": {"qualified_name": "tests.support.workflow_api_bait.Evil", "value": {}}}
    refused = await http.post(f"/events/{started.handler_id}", json=unknown)
    assert refused.status_code == 400
    # A known type by its qualified name resolves by name among the workflow's events.
    bait = "tests.support.workflow_api_bait.HumanResponseEvent"
    named = {"event": {"qualified_name": bait, "value": {"response": "yes"}}}
    assert (await http.post(f"/events/{started.handler_id}", json=named)).status_code == 200
    done = await system.client.wait_for_handler(
        started.handler_id, timeout=DEADLINE, poll_interval=0.05
    )
    assert done.result is not None and done.result.value["result"]["approved"] is True
    assert "tests.support.workflow_api_bait" not in sys.modules
