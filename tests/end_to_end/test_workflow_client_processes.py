"""LlamaIndex's `WorkflowClient`, unchanged, drives a mesh whose every part is its own process
on RabbitMQ, with the system's API key as a bearer token: a person's answer reaches a run that
was released while it waited and whose replica was restarted meanwhile, and the run is a task
of ours too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from llama_agents.client import WorkflowClient
from workflows.events import HumanResponseEvent, StartEvent

from tests.end_to_end.test_workflow_processes import Mesh
from tests.support.helpers import DEADLINE

pytestmark = pytest.mark.rabbitmq

REVIEW = "tests/support/workflow_system.py:build_review"
KEY = "e2e-key"


@pytest.fixture
async def mesh(amqp_url: str, exchange_name: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    from tests.support import broker

    running = Mesh(
        amqp_url,
        exchange_name,
        tmp_path,
        LLAMA_AGENTS_API_KEY=KEY,
        LLAMA_AGENTS_TEST_IDLE_RELEASE="0.2",
        LLAMA_AGENTS_WORKFLOW_API_PREFIX="/wf",
    )
    try:
        yield running
    finally:
        await running.group.close()
        await broker.delete_system(amqp_url, exchange_name)


async def test_the_official_client_drives_a_mesh_of_processes(mesh: Mesh) -> None:
    await mesh.start_control_plane()
    await mesh.start_service("review", REVIEW)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=mesh.url + "/wf", headers=headers, timeout=30) as http:
        client = WorkflowClient(httpx_client=http)
        assert (await client.list_workflows()).workflows == ["review"]
        started = await client.run_workflow_nowait("review", start_event=StartEvent(input="tea"))
        stream = client.get_workflow_events(started.handler_id)
        async with asyncio.timeout(DEADLINE):
            async for event in stream:
                if event.type == "InputRequiredEvent":
                    break
        await stream.aclose()

        assert await mesh.group.stop("review") == 0  # nothing holds the waiting run now
        await mesh.start_service("review", REVIEW)

        await client.send_event(started.handler_id, HumanResponseEvent(response="yes"))
        rest = client.get_workflow_events(started.handler_id, after_sequence=stream.last_sequence)
        async with asyncio.timeout(DEADLINE):
            ended = [event async for event in rest]
        assert [e.type for e in ended] == ["StopEvent"]
        done = await client.get_handler(started.handler_id)
        assert done.status == "completed" and done.result is not None
        assert done.result.value == {"result": {"draft": "a note about tea", "approved": True}}

        task = (await http.get(f"{mesh.url}/tasks/{started.handler_id}")).json()
        assert (task["status"], task["service"]) == ("completed", "review")
