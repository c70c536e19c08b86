"""The control plane on other llama-index KV stores: its state lives wherever it is told."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from llama_agents import ControlPlaneServer, ServiceDefinition, SimpleMessageQueue, TaskStatus
from tests.support.control_plane import Worker
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator

REDIS_URL = "redis://127.0.0.1:6379"


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    namespace = f"llama_agents_test_{uuid.uuid4().hex[:8]}_"
    yield namespace
    keys = [key async for key in client.scan_iter(f"{namespace}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_kv_store_keeps_tasks_and_services(redis_namespace: str) -> None:
    from llama_index.storage.kvstore.redis import RedisKVStore

    queue = SimpleMessageQueue()
    first = ControlPlaneServer(
        queue,
        FanOutOrchestrator(["worker"]),
        RedisKVStore(redis_uri=REDIS_URL),
        state_namespace=redis_namespace,
    )
    await first.start()
    consuming = asyncio.create_task((await first.register_to_message_queue())())
    await first.register_service(ServiceDefinition(service_name="worker", description="w"))
    worker = Worker(queue)
    worker_task = await worker.start()
    record = await first.create_task("stored in redis")
    [step] = await worker.steps.wait_for(1)
    await worker.answer(step, "kept")
    await first.wait_for_task(record.task_id, timeout=DEADLINE)
    await first.close()

    second = ControlPlaneServer(
        queue,
        FanOutOrchestrator(["worker"]),
        RedisKVStore(redis_uri=REDIS_URL),
        state_namespace=redis_namespace,
    )
    await second.start()
    again = await second.get_task(record.task_id)
    assert again.status is TaskStatus.COMPLETED
    assert again.result is not None and again.result.result == "kept"
    assert [s.service_name for s in await second.list_services()] == ["worker"]
    await second.close()
    consuming.cancel()
    worker_task.cancel()
