"""An unknown result key is refused up front; a step nobody can receive is retried for
`publish_retry_for` seconds, then its task fails, on RabbitMQ (issue 9, item 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from llama_agents import ControlPlaneServer, ServiceDefinition, TaskStatus
from llama_agents.control_plane import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator

pytestmark = pytest.mark.rabbitmq


async def test_unknown_result_keys_are_refused_and_leave_nothing_running(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    control_plane = ControlPlaneServer(
        await rabbitmq_factory(),
        FanOutOrchestrator(["worker"]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
    )
    serving = await serve(control_plane)
    try:
        async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
            before = len(asyncio.all_tasks())
            for _ in range(200):
                response = await http.post("/tasks", json={"input": "x", "result_key": "nobody"})
                assert response.status_code == 422
                assert "no queue takes results for 'nobody'" in response.json()["detail"]
            assert len(asyncio.all_tasks()) <= before + 2
            assert sum((await control_plane.manager.store.count_tasks()).values()) == 0
    finally:
        await stop(control_plane, serving)


async def test_a_step_no_queue_takes_fails_its_task_after_publish_retry_for(
    rabbitmq_factory: QueueFactory, tmp_path: Path
) -> None:
    control_plane = ControlPlaneServer(
        await rabbitmq_factory(),
        FanOutOrchestrator([]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
        publish_retry_for=1.0,
    )
    serving = await serve(control_plane)
    try:
        # Registered, but its queue was never declared: every publish to it is unroutable.
        await control_plane.register_service(
            ServiceDefinition(service_name="ghost", description="never started")
        )
        async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as http:
            created = await http.post("/tasks", json={"input": "x", "service": "ghost"})
            assert created.status_code == 200, created.text
            task_id = created.json()["task_id"]
        record = await control_plane.wait_for_status(
            task_id, {TaskStatus.FAILED, TaskStatus.COMPLETED}, timeout=DEADLINE
        )
        assert record.status is TaskStatus.FAILED
        assert record.error is not None and "could not publish for 1s" in record.error
    finally:
        await stop(control_plane, serving)


def test_publish_retry_for_is_validated_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llama_agents import ConfigurationError, SimpleMessageQueue

    monkeypatch.setenv("LLAMA_AGENTS_PUBLISH_RETRY_FOR", "7.5")
    queue = SimpleMessageQueue()
    assert ControlPlaneServer(queue, FanOutOrchestrator([])).publish_retry_for == 7.5
    with pytest.raises(ConfigurationError, match="publish_retry_for must be positive"):
        ControlPlaneServer(queue, FanOutOrchestrator([]), publish_retry_for=0)
