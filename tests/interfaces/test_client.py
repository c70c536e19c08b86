"""The SDK (`AsyncLlamaAgentsClient`, `LlamaAgentsClient`) against a served control plane.

The control plane is served on the test's event loop, so the blocking client always runs in
a worker thread (`asyncio.to_thread`): on the loop's own thread it would block the server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from llama_agents import (
    AsyncLlamaAgentsClient,
    ConfigurationError,
    LlamaAgentsClient,
    ServiceDefinition,
    ServiceNotFoundError,
    TaskExistsError,
    TaskNotFoundError,
    TaskStatus,
    TaskTimeoutError,
)
from llama_agents.control_plane.events import ControlPlaneEvent
from llama_agents.errors import ControlPlaneUnavailableError, UnauthorizedError
from llama_agents.messages.records import ServiceInfo
from llama_agents.sdk import ControlPlaneResponseError
from tests.support.helpers import DEADLINE
from tests.support.systems import UNREACHABLE, System, is_long_poll, served_system


def definition_of(info: ServiceInfo) -> ServiceDefinition:
    """The definition a `ServiceInfo` carries (without what the broker says about it)."""
    return ServiceDefinition.model_validate(info.model_dump(exclude={"consumers", "live"}))


@pytest.fixture(autouse=True)
def _no_api_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with served_system(tmp_path) as served:
        yield served


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[System]:
    """A control plane that wants the API key `k`."""
    async with served_system(tmp_path, api_key="k") as served:
        yield served


# -- the async client -------------------------------------------------------------------


async def test_async_task_lifecycle(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_id = await client.create_task("do it")
        step = await system.next_step()
        assert step.data["task_id"] == task_id

        record = await client.get_task(task_id)
        assert record.status is TaskStatus.RUNNING
        assert [s.service for s in record.steps] == ["worker"]
        assert await client.get_task_result(task_id) is None
        [summary] = await client.list_tasks()
        assert (summary.task_id, summary.status, summary.steps) == (task_id, TaskStatus.RUNNING, 1)

        # The wait is held by the server when the step is answered, and returns with it.
        waiting = asyncio.create_task(client.wait_for_result(task_id, timeout=DEADLINE * 4))
        await system.requests.wait_for(is_long_poll(task_id))
        assert not waiting.done()
        await system.worker.answer(step, "done it")
        async with asyncio.timeout(DEADLINE):
            result = await waiting
        assert (result.task_id, result.result, result.error) == (task_id, "done it", None)

        finished = await client.get_task_result(task_id)
        assert finished is not None and finished.result == "done it"
        assert (await client.get_task(task_id)).status is TaskStatus.COMPLETED


async def test_async_create_task_options_and_cancel(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        with pytest.raises(ControlPlaneResponseError, match="no queue takes results") as unknown:
            await client.create_task("x", result_key="answers")
        assert unknown.value.status_code == 422
        await system.control_plane.message_queue.declare_queue("answers")
        task_id = await client.create_task("x", task_id="my-id", result_key="answers")
        assert task_id == "my-id"
        assert (await client.get_task("my-id")).result_key == "answers"
        cancelled = await client.cancel_task("my-id")
        assert (cancelled.task_id, cancelled.status) == ("my-id", TaskStatus.CANCELLED)
        result = await client.wait_for_result("my-id", timeout=DEADLINE)
        assert result.error == "cancelled"

        with pytest.raises(TaskExistsError, match="my-id"):
            await client.create_task("x", task_id="my-id")


async def test_async_wait_for_result_times_out(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_id = await client.create_task("slow")
        with pytest.raises(TaskTimeoutError, match=task_id):
            await client.wait_for_result(task_id, timeout=0.2)
        # timeout=0 checks once, without waiting.
        with pytest.raises(TaskTimeoutError):
            await client.wait_for_result(task_id, timeout=0)
        assert any(is_long_poll(task_id)(seen) for seen in system.requests.seen)


async def test_async_services_status_and_health(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        assert await client.list_services() == []
        definition = ServiceDefinition(service_name="worker", description="Does the work.")
        assert await client.register_service(definition) == definition
        assert [definition_of(info) for info in await client.list_services()] == [definition]
        assert definition_of(await client.get_service("worker")) == definition
        status = await client.status()
        assert (status["service"], status["services"]) == ("control_plane", 1)
        assert await client.health() is True
        await client.deregister_service("worker")
        assert await client.list_services() == []
        with pytest.raises(ServiceNotFoundError):
            await client.deregister_service("worker")


async def test_async_events_follow_a_task(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client, client.events() as events:
        # Opened: the control plane has subscribed the stream, nothing below is missed.
        definition = ServiceDefinition(service_name="worker", description="Works.")
        await client.register_service(definition)
        task_id = await client.create_task("watch me")
        step = await system.next_step()
        await system.worker.answer(step, "watched")
        seen: list[ControlPlaneEvent] = []
        async with asyncio.timeout(DEADLINE):
            async for event in events:
                seen.append(event)
                if event.task is not None and event.task.status is TaskStatus.COMPLETED:
                    break
    assert (seen[0].kind, seen[0].action, seen[0].service) == ("service", "registered", definition)
    statuses = [e.task.status for e in seen if e.task is not None and e.task.task_id == task_id]
    assert statuses[0] is TaskStatus.PENDING
    assert TaskStatus.RUNNING in statuses
    assert statuses[-1] is TaskStatus.COMPLETED


class PortRecorder(httpx.AsyncHTTPTransport):
    """Records the local port of the connection each response came over."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        stream = response.extensions["network_stream"]
        self.ports.append(stream.get_extra_info("client_addr")[1])
        return response


async def test_async_client_reuses_one_connection_pool(system: System) -> None:
    transport = PortRecorder()
    client = AsyncLlamaAgentsClient(system.url, transport=transport)
    http = client.http
    task_id = await client.create_task("x")
    await client.get_task(task_id)
    await client.list_tasks()
    await client.status()
    await client.list_services()
    assert client.http is http
    assert len(transport.ports) == 5
    assert len(set(transport.ports)) == 1  # every call went over the same kept-alive connection
    await client.aclose()
    assert http.is_closed


# -- typed errors -----------------------------------------------------------------------


async def test_async_unknown_ids_raise_typed_errors(system: System) -> None:
    async with AsyncLlamaAgentsClient(system.url) as client:
        for call in (
            client.get_task("nope"),
            client.get_task_result("nope"),
            client.wait_for_result("nope", timeout=1),
            client.cancel_task("nope"),
        ):
            with pytest.raises(TaskNotFoundError) as missing:
                await call
            assert missing.value.task_id == "nope"
        with pytest.raises(ServiceNotFoundError) as no_service:
            await client.get_service("nobody")
        assert no_service.value.service_name == "nobody"

        bad = ServiceDefinition.model_construct(service_name="bad name", description="x")
        with pytest.raises(ControlPlaneResponseError) as invalid:
            await client.register_service(bad)
        assert invalid.value.status_code == 422
        assert "service_name" in invalid.value.detail


async def test_async_api_key(locked: System, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (None, "wrong"):
        async with AsyncLlamaAgentsClient(locked.url, api_key=key) as client:
            with pytest.raises(UnauthorizedError, match="API key"):
                await client.list_tasks()
            with pytest.raises(UnauthorizedError):
                await client.create_task("x")
            with pytest.raises(UnauthorizedError):
                await client.events().open()
            assert await client.health() is True  # the probe stays open
    async with AsyncLlamaAgentsClient(locked.url, api_key="k") as client:
        assert await client.list_tasks() == []
    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", "k")
    async with AsyncLlamaAgentsClient(locked.url) as client:
        await client.create_task("with the key from the environment")


async def test_async_unreachable_control_plane() -> None:
    async with AsyncLlamaAgentsClient(UNREACHABLE, timeout=5) as client:
        for call in (client.list_tasks(), client.create_task("x"), client.events().open()):
            with pytest.raises(ControlPlaneUnavailableError, match=re.escape(UNREACHABLE)):
                await call
        assert await client.health() is False
    async with AsyncLlamaAgentsClient("http://no-such-host.invalid", timeout=5) as client:
        with pytest.raises(ControlPlaneUnavailableError, match=r"no-such-host\.invalid"):
            await client.status()


async def test_inputs_are_validated_before_sending() -> None:
    for url in ("", "   ", "localhost:8000", "ftp://host", "http://", "http:///tasks"):
        with pytest.raises(ConfigurationError, match="URL"):
            AsyncLlamaAgentsClient(url)
        with pytest.raises(ConfigurationError, match="URL"):
            LlamaAgentsClient(url)
    with pytest.raises(ConfigurationError, match="timeout"):
        AsyncLlamaAgentsClient(UNREACHABLE, timeout=0)
    async with AsyncLlamaAgentsClient(UNREACHABLE + "/") as client:
        assert client.control_plane_url == UNREACHABLE
        with pytest.raises(ConfigurationError, match="input"):
            await client.create_task("  ")
        with pytest.raises(ConfigurationError, match="task_id"):
            await client.create_task("x", task_id="a/b")
        with pytest.raises(ConfigurationError, match="task_id"):
            await client.get_task("")
        with pytest.raises(ConfigurationError, match="timeout"):
            await client.wait_for_result("x", timeout=-1)
        with pytest.raises(ConfigurationError, match="service name"):
            await client.get_service("")


# -- the blocking client (always in a worker thread) ------------------------------------


async def test_sync_task_lifecycle(system: System) -> None:
    client = LlamaAgentsClient(system.url)
    http = client.http
    task_id = await asyncio.to_thread(client.create_task, "do it")
    step = await system.next_step()
    record = await asyncio.to_thread(client.get_task, task_id)
    assert record.status is TaskStatus.RUNNING
    assert await asyncio.to_thread(client.get_task_result, task_id) is None
    [summary] = await asyncio.to_thread(client.list_tasks)
    assert summary.task_id == task_id

    waiting = asyncio.ensure_future(asyncio.to_thread(client.wait_for_result, task_id, DEADLINE))
    await system.requests.wait_for(is_long_poll(task_id))
    assert not waiting.done()
    await system.worker.answer(step, "done it")
    async with asyncio.timeout(DEADLINE):
        result = await waiting
    assert result.result == "done it"
    finished = await asyncio.to_thread(client.get_task_result, task_id)
    assert finished == result
    assert client.http is http
    await asyncio.to_thread(client.close)
    assert http.is_closed


async def test_sync_cancel_timeout_and_errors(system: System) -> None:
    def scenario() -> None:
        with LlamaAgentsClient(system.url) as client:
            task_id = client.create_task("slow", task_id="slow-1")
            with pytest.raises(TaskTimeoutError):
                client.wait_for_result(task_id, timeout=0.2)
            assert client.cancel_task(task_id).status is TaskStatus.CANCELLED
            assert client.wait_for_result(task_id, timeout=DEADLINE).error == "cancelled"
            with pytest.raises(TaskExistsError, match="slow-1"):
                client.create_task("again", task_id="slow-1")
            with pytest.raises(TaskNotFoundError):
                client.get_task("nope")
            with pytest.raises(TaskNotFoundError):
                client.get_task_result("nope")
            with pytest.raises(TaskNotFoundError):
                client.cancel_task("nope")
            with pytest.raises(ServiceNotFoundError):
                client.get_service("nobody")
            with pytest.raises(ServiceNotFoundError):
                client.deregister_service("nobody")

    await asyncio.to_thread(scenario)


async def test_sync_services_status_and_health(system: System) -> None:
    def scenario() -> None:
        with LlamaAgentsClient(system.url) as client:
            definition = ServiceDefinition(service_name="worker", description="Works.")
            assert client.register_service(definition) == definition
            assert [definition_of(info) for info in client.list_services()] == [definition]
            assert definition_of(client.get_service("worker")) == definition
            assert client.status()["services"] == 1
            assert client.health() is True
            client.deregister_service("worker")
            assert client.list_services() == []

    await asyncio.to_thread(scenario)


async def test_sync_api_key_and_unreachable(locked: System) -> None:
    def scenario() -> None:
        for key in (None, "wrong"):
            with LlamaAgentsClient(locked.url, api_key=key) as client:
                with pytest.raises(UnauthorizedError):
                    client.list_tasks()
                with pytest.raises(UnauthorizedError):
                    client.events().open()
        with LlamaAgentsClient(locked.url, api_key="k") as client:
            assert client.list_tasks() == []
        with LlamaAgentsClient(UNREACHABLE, timeout=5) as client:
            with pytest.raises(ControlPlaneUnavailableError, match=re.escape(UNREACHABLE)):
                client.get_task("x")
            assert client.health() is False

    await asyncio.to_thread(scenario)


async def test_sync_events_follow_a_task(system: System) -> None:
    loop = asyncio.get_running_loop()
    opened = asyncio.Event()

    def watch() -> list[ControlPlaneEvent]:
        seen: list[ControlPlaneEvent] = []
        with LlamaAgentsClient(system.url) as client, client.events() as events:
            loop.call_soon_threadsafe(opened.set)
            for event in events:
                seen.append(event)
                if event.task is not None and event.task.status is TaskStatus.COMPLETED:
                    break
        return seen

    watching = asyncio.ensure_future(asyncio.to_thread(watch))
    async with asyncio.timeout(DEADLINE):
        await opened.wait()
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_id = await client.create_task("watch me")
    await system.worker.answer(await system.next_step(), "watched")
    async with asyncio.timeout(DEADLINE):
        seen = await watching
    assert {e.task.task_id for e in seen if e.task is not None} == {task_id}
    assert seen[-1].task is not None and seen[-1].task.status is TaskStatus.COMPLETED
