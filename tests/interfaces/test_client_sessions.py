"""The SDK's sessions (a conversation of two turns, sync and async, on both queues) and task
listings (newest first, filtered, read a page at a time), against a real control plane
serving a real `WorkflowService`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    AsyncSession,
    LlamaAgentsClient,
    Session,
    SessionExistsError,
    SessionInfo,
    SessionNotFoundError,
    SimpleMessageQueue,
    TaskStatus,
    TaskSummary,
    WorkflowService,
)
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.sdk_workflows import Remember
from tests.support.workflows import Mesh, mesh


@pytest.fixture
async def remember(tmp_path: Path) -> AsyncIterator[Mesh]:
    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Remember(), queue, service_name="remember"))
        yield m
    await queue.cleanup()


# -- sessions -----------------------------------------------------------------------------


async def test_async_session_two_turns(queue_factory: QueueFactory, tmp_path: Path) -> None:
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Remember(), queue, service_name="remember"))
        async with AsyncLlamaAgentsClient(m.url) as client:
            session = await client.create_session()
            assert isinstance(session, AsyncSession) and session.session_id
            first = await session.run("hello", service="remember", timeout=DEADLINE)
            assert (first.error, first.data["result"]) == (None, ["hello"])
            second = await session.run("again", service="remember", timeout=DEADLINE)
            assert second.data["result"] == ["hello", "again"]  # the second continued the first

            info = await session.info()
            assert info.session_id == (await client.get_session(session.session_id)).session_id
            assert info.tasks == [first.task_id, second.task_id]
            # The result is out before the session's turn is handed on: active may lag.
            assert info.active in (None, second.task_id) and info.queued == []
            listed = await client.list_tasks(session_id=session.session_id)
            assert [t.task_id for t in listed] == [second.task_id, first.task_id]
            assert {t.session_id for t in listed} == {session.session_id}

            # A task created in the session waits its turn behind the one running.
            queued = await session.create_task("third", service="remember")
            done = await client.wait_for_result(queued, timeout=DEADLINE)
            assert done.data["result"] == ["hello", "again", "third"]
            # A turn streamed as it runs (created and followed in one request).
            async with (
                asyncio.timeout(DEADLINE),
                await session.stream_task("fourth", service="remember") as stream,
            ):
                streamed = [event async for event in stream]
            assert streamed[-1].data["result"] == ["hello", "again", "third", "fourth"]
            assert (await client.get_task(stream.task_id)).session_id == session.session_id

            await session.delete()
            with pytest.raises(SessionNotFoundError) as gone:
                await client.get_session(session.session_id)
            assert gone.value.session_id == session.session_id
            with pytest.raises(SessionNotFoundError):
                await client.delete_session(session.session_id)
            with pytest.raises(SessionNotFoundError):
                await session.run("after the end", service="remember")


async def test_sync_session_two_turns_and_named_sessions(remember: Mesh) -> None:
    def scenario() -> None:
        with LlamaAgentsClient(remember.url) as client:
            session = client.create_session("chat-1")
            assert isinstance(session, Session) and session.session_id == "chat-1"
            assert repr(session) == "Session('chat-1')"
            first = session.run("hi", timeout=DEADLINE, service="remember")
            second = session.run("there", timeout=DEADLINE, service="remember")
            assert second.data["result"] == ["hi", "there"]
            with session.stream_task("you", service="remember") as stream:
                streamed = list(stream)
            assert streamed[-1].data["result"] == ["hi", "there", "you"]
            info = session.info()
            assert isinstance(info, SessionInfo)
            assert info.tasks == [first.task_id, second.task_id, stream.task_id]
            with pytest.raises(SessionExistsError, match="chat-1"):
                client.create_session("chat-1")
            # Another session starts from nothing.
            other = client.create_session()
            assert other.run("fresh", service="remember").data["result"] == ["fresh"]
            client.delete_session("chat-1")
            with pytest.raises(SessionNotFoundError):
                session.info()
            with pytest.raises(SessionNotFoundError):
                session.delete()

    await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE * 2)


# -- listing tasks ------------------------------------------------------------------------------


class RequestCounter(httpx.AsyncHTTPTransport):
    """Keeps the query of every `GET /tasks`."""

    def __init__(self) -> None:
        super().__init__()
        self.listings: list[httpx.QueryParams] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/tasks":
            self.listings.append(request.url.params)
        return await super().handle_async_request(request)


def newest_first(tasks: list[TaskSummary]) -> list[str]:
    return [t.task_id for t in sorted(tasks, key=lambda t: (t.created_at, t.task_id))][::-1]


async def test_async_listing_follows_pages_newest_first(remember: Mesh) -> None:
    transport = RequestCounter()
    async with AsyncLlamaAgentsClient(remember.url, transport=transport) as client:
        created = [await client.create_task(f"t{i}", service="remember") for i in range(7)]
        for task_id in created:
            await client.wait_for_result(task_id, timeout=DEADLINE)

        everything = await client.list_tasks(page_size=3)
        assert sorted(t.task_id for t in everything) == sorted(created)
        assert [t.task_id for t in everything] == newest_first(everything)
        assert [p.get("limit") for p in transport.listings] == ["3", "3", "3"]
        assert "cursor" not in transport.listings[0]
        assert transport.listings[1]["cursor"] and transport.listings[2]["cursor"]

        transport.listings.clear()
        five = await client.list_tasks(limit=5, page_size=3)
        assert [t.task_id for t in five] == [t.task_id for t in everything[:5]]
        assert [p.get("limit") for p in transport.listings] == ["3", "2"]  # no more than asked

        transport.listings.clear()
        first = await anext(client.iter_tasks(page_size=2))
        assert first.task_id == everything[0].task_id
        assert len(transport.listings) == 1  # pages are read as they are used

        assert await client.list_tasks(limit=0) == []
        assert await client.list_tasks(status=TaskStatus.WAITING_FOR_INPUT) == []
        completed = await client.list_tasks(status=["completed", TaskStatus.FAILED], limit=100)
        assert len(completed) == 7
        assert transport.listings[-1].get_list("status") == ["completed", "failed"]


async def test_sync_listing_follows_pages(remember: Mesh) -> None:
    async with AsyncLlamaAgentsClient(remember.url) as client:
        for i in range(5):
            await client.wait_for_result(
                await client.create_task(f"t{i}", service="remember"), timeout=DEADLINE
            )

    def scenario() -> tuple[list[TaskSummary], list[TaskSummary], list[TaskSummary]]:
        with LlamaAgentsClient(remember.url) as client:
            return (
                client.list_tasks(page_size=2),
                list(client.iter_tasks(limit=3, page_size=2)),
                client.list_tasks(status="running"),
            )

    everything, three, running = await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE)
    assert len(everything) == 5
    assert [t.task_id for t in everything] == newest_first(everything)
    assert three == everything[:3]
    assert running == []
