"""`result_key: null` (SDK `publish_result=False`): a task whose caller reads its result over
HTTP publishes no result message, so no queue fills up unread, and it is done with in the
same write that ends it (one transaction fewer per task). A session's task still hands its
session on before it is done with (see `after_finish`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    CallableMessageConsumer,
    ConfigurationError,
    QueueMessage,
    TaskRecord,
    TaskResult,
    WorkflowService,
)
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.sdk_workflows import Remember
from tests.support.systems import UNREACHABLE
from tests.support.workflows import Mesh, mesh


class HumanQueue:
    """The results published to `human`, in the order they come."""

    def __init__(self) -> None:
        self.task_ids: list[str] = []
        self.changed = asyncio.Condition()

    async def receive(self, message: QueueMessage) -> None:
        async with self.changed:
            self.task_ids.append(TaskResult.model_validate(message.data).task_id)
            self.changed.notify_all()

    async def until(self, task_id: str) -> list[str]:
        async with asyncio.timeout(DEADLINE), self.changed:
            await self.changed.wait_for(lambda: task_id in self.task_ids)
        return list(self.task_ids)


async def reading_human(m: Mesh) -> HumanQueue:
    human = HumanQueue()
    consumer = CallableMessageConsumer(handler=human.receive, message_type="human")
    start = await m.queue.register_consumer(consumer)
    asyncio.get_running_loop().create_task(start())
    return human


def counting_saves(m: Mesh, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each task's record is written after it was created."""
    saves: Counter[str] = Counter()
    repository = m.control_plane.manager.tasks
    save = repository.save

    async def counted(record: TaskRecord, **kwargs: Any) -> Any:
        saves[record.task_id] += 1
        return await save(record, **kwargs)

    monkeypatch.setattr(repository, "save", counted)
    return saves


async def finished(client: AsyncLlamaAgentsClient, task_id: str) -> TaskRecord:
    await client.wait_for_result(task_id, timeout=DEADLINE)
    return await client.get_task(task_id)


async def test_no_result_message_and_done_with_in_one_write(
    queue_factory: QueueFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Remember(), queue, service_name="remember"))
        human = await reading_human(m)
        saves = counting_saves(m, monkeypatch)
        quiet = await m.create("quiet", service="remember", result_key=None)
        async with AsyncLlamaAgentsClient(m.url) as client:
            record = await finished(client, quiet)
            assert record.result is not None and record.result.data["result"] == ["quiet"]
            assert record.result_key is None
            # Done with (recovery will not publish it again) by the write that ended it.
            assert record.result_published and record.finished_at is not None

            published = await m.create("published", service="remember")
            # Results come in order: had the first task published one, it would come first.
            assert await human.until(published) == [published]
            await finished(client, published)
        assert saves[quiet] == saves[published] - 1, saves


async def test_sdk_publish_result_false_streamed_created_and_in_a_session(
    tmp_path: Path,
) -> None:
    from llama_agents import SimpleMessageQueue

    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Remember(), queue, service_name="remember"))
        human = await reading_human(m)
        async with AsyncLlamaAgentsClient(m.url) as client:
            async with await client.stream_task(
                "streamed", service="remember", publish_result=False
            ) as stream:
                events = [event async for event in stream]
            assert events[-1].data["result"] == ["streamed"]
            created = await client.create_task("created", service="remember", publish_result=False)
            assert (await finished(client, created)).result_key is None

            # A session's turns: neither publishes; the session is handed on to the second.
            session = await client.create_session()
            first = await session.create_task("one", service="remember", publish_result=False)
            second = await session.run("two", service="remember", publish_result=False)
            assert second.data["result"] == ["one", "two"]
            assert (await finished(client, first)).finished_at is not None

            last = await client.create_task("last", service="remember")
            assert await human.until(last) == [last]
    await queue.cleanup()


async def test_publish_result_arguments_are_checked_before_sending() -> None:
    async with AsyncLlamaAgentsClient(UNREACHABLE) as client:
        with pytest.raises(ConfigurationError, match="result_key"):
            await client.create_task("x", result_key="mine", publish_result=False)
        with pytest.raises(ConfigurationError, match="publish_result"):
            await client.stream_task("x", publish_result="no")  # type: ignore[arg-type]
