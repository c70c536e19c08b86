"""The SDK and a workflow's run: its events streamed in order (and resumed exactly where a
dropped connection broke), read so far, answered (`respond`, `send_event`), and every
refusal as its typed error. A real control plane serves a real `WorkflowService` (`Review`:
it drafts, streams a `Progress` event, then asks a person).

The blocking client runs in a worker thread: the control plane is served on the test's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent

from llama_agents import (
    AsyncLlamaAgentsClient,
    ConfigurationError,
    ControlPlaneUnavailableError,
    EventRejectedError,
    LlamaAgentsClient,
    RequestTooLargeError,
    ServiceNotFoundError,
    SessionNotFoundError,
    TaskEvent,
    TaskExistsError,
    TaskFinishedError,
    TaskNotFoundError,
    TaskStatus,
    UnknownEventTypeError,
    WorkflowService,
)
from llama_agents.sdk import _plans
from tests.conftest import QueueFactory
from tests.support.cut_streams import AsyncCuttingTransport, CuttingTransport, last_event_ids
from tests.support.helpers import DEADLINE
from tests.support.systems import UNREACHABLE
from tests.support.workflows import Mesh, Review, mesh

FIRST_TWO = [(1, "Progress"), (2, "InputRequiredEvent")]


def seen(events: list[TaskEvent]) -> list[tuple[int, str]]:
    return [(e.sequence, e.type) for e in events]


def assert_whole_log(events: list[TaskEvent], approved: bool = True) -> None:
    """1, 2, ... with no gap or repeat, ending with the run's completion."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert seen(events)[:2] == FIRST_TWO
    assert events[0].data == {"message": "drafting release notes"}
    finished = events[-1]
    assert finished.is_terminal and finished.data["status"] == "completed"
    assert finished.data["result"] == {"draft": "a note about release notes", "approved": approved}
    assert [e for e in events if e.is_terminal] == [finished]


async def waiting_task(m: Mesh) -> str:
    """A `Review` run that drafted and now waits for a person (events 1 and 2 logged)."""
    task_id = await m.create("release notes", service="review")
    await m.control_plane.wait_for_status(task_id, {TaskStatus.WAITING_FOR_INPUT}, timeout=DEADLINE)
    return task_id


@pytest.fixture
async def review(tmp_path: Path) -> AsyncIterator[Mesh]:
    """A control plane and a `Review` service on the embedded queue."""
    from llama_agents import SimpleMessageQueue

    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        yield m
    await queue.cleanup()


# -- streaming and answering --------------------------------------------------------------


async def test_async_stream_respond_and_read_back(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """On both queues: the stream yields the run's events as they happen, the answer sent
    with `respond` completes the run, and the stream ends with `TaskFinished`."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        async with AsyncLlamaAgentsClient(m.url) as client:
            task_id = await client.create_task("release notes", service="review")
            streamed: list[TaskEvent] = []
            async with asyncio.timeout(DEADLINE), client.stream_events(task_id) as stream:
                async for event in stream:
                    streamed.append(event)
                    if event.type == "InputRequiredEvent":
                        assert "a note about release notes" in event.data["prefix"]
                        sent = await client.respond(task_id, "yes")
                        assert (sent.task_id, sent.status) == (task_id, "sent")
                assert stream.last_sequence == streamed[-1].sequence
            assert_whole_log(streamed)

            result = await client.wait_for_result(task_id, timeout=DEADLINE)
            assert result.error is None and result.data["result"]["approved"] is True
            # The finished task's log, read whole at once, and from a sequence on.
            assert await client.get_events(task_id) == streamed
            assert await client.get_events(task_id, after=2) == streamed[2:]
            resumed = [e async for e in client.stream_events(task_id, after=1)]
            assert resumed == streamed[1:]


async def test_sync_stream_closed_early_then_continued_with_after(review: Mesh) -> None:
    """The caller stops reading after the prompt, answers with `send_event`, and a new
    stream from `after=` gets exactly the rest."""
    task_id = await waiting_task(review)

    def scenario() -> tuple[list[TaskEvent], list[TaskEvent], list[TaskEvent]]:
        with LlamaAgentsClient(review.url) as client:
            first: list[TaskEvent] = []
            with client.stream_events(task_id) as stream:
                for event in stream:
                    first.append(event)
                    if event.type == "InputRequiredEvent":
                        break  # closes the response: the connection is gone
            sent = client.send_event(task_id, "HumanResponseEvent", {"response": "no"})
            assert sent.task_id == task_id
            rest = list(client.stream_events(task_id, after=stream.last_sequence))
            return first, rest, client.get_events(task_id)

    first, rest, whole = await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE)
    assert seen(first) == FIRST_TWO
    assert rest[0].sequence == 3
    assert_whole_log(first + rest, approved=False)
    assert whole == first + rest


async def test_async_dropped_connection_resumes_with_last_event_id(review: Mesh) -> None:
    """The connection is cut after event 1 (mid-way through event 2), then after event 2:
    the stream reopens with `Last-Event-ID` each time and yields each event once."""
    task_id = await waiting_task(review)
    transport = AsyncCuttingTransport(cuts=[1, 1])
    async with AsyncLlamaAgentsClient(review.url, transport=transport) as client:
        streamed: list[TaskEvent] = []
        async with asyncio.timeout(DEADLINE):
            async for event in client.stream_events(task_id):
                streamed.append(event)
                if event.type == "InputRequiredEvent":
                    await client.respond(task_id, "yes")
    assert_whole_log(streamed)
    assert last_event_ids(transport.requests) == [None, "1", "2"]


async def test_sync_dropped_connection_resumes_with_last_event_id(review: Mesh) -> None:
    task_id = await waiting_task(review)
    transport = CuttingTransport(cuts=[0, 1])

    def scenario() -> list[TaskEvent]:
        with LlamaAgentsClient(review.url, transport=transport) as client:
            streamed = []
            for event in client.stream_events(task_id, after=None):
                streamed.append(event)
                if event.type == "InputRequiredEvent":
                    client.respond(task_id, "yes")
            return streamed

    streamed = await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE)
    assert_whole_log(streamed)
    # Cut inside event 1 (before any event was whole), then after event 1.
    assert last_event_ids(transport.requests) == [None, None, "1"]


async def test_a_stream_that_cannot_be_reopened_gives_up(
    review: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection is cut: after `RECONNECT_FOR` the stream raises, naming where it
    was. A control plane that cannot be reached at all is reported at once."""
    monkeypatch.setattr(_plans, "RECONNECT_FOR", 0.5)
    task_id = await waiting_task(review)
    transport = AsyncCuttingTransport(cuts=[1] + [0] * 50)
    async with AsyncLlamaAgentsClient(review.url, transport=transport) as client:
        stream = client.stream_events(task_id)
        assert (await anext(stream)).sequence == 1
        started = time.monotonic()
        with pytest.raises(ControlPlaneUnavailableError, match="after event 1"):
            await anext(stream)
        assert 0.5 <= time.monotonic() - started < DEADLINE
        assert len(transport.requests) > 2
    async with AsyncLlamaAgentsClient(UNREACHABLE, timeout=5) as client:
        with pytest.raises(ControlPlaneUnavailableError, match=UNREACHABLE):
            await anext(client.stream_events(task_id))


async def test_get_events_of_a_waiting_task_returns_what_is_logged(review: Mesh) -> None:
    """A running task's log has no end yet: the read returns once the control plane says
    nothing new came (its keep-alive), with exactly the events logged."""
    task_id = await waiting_task(review)
    async with AsyncLlamaAgentsClient(review.url) as client:
        reads = asyncio.gather(client.get_events(task_id), client.get_events(task_id, after=1))
        events, after_one = await asyncio.wait_for(reads, DEADLINE * 2)
        assert seen(events) == FIRST_TWO
        assert after_one == events[1:]


# -- creating a task and streaming it in one request ----------------------------------------


async def test_async_stream_task_creates_and_streams_in_one_request(
    queue_factory: QueueFactory, tmp_path: Path
) -> None:
    """On both queues: `stream_task` returns once the task exists (one `POST /tasks/stream`,
    no `GET`), its stream is the task's whole log, answered on the way."""
    queue = await queue_factory()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0))
        recorded: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            recorded.append(request)

        async with AsyncLlamaAgentsClient(m.url) as client:
            client.http.event_hooks["request"].append(record)
            stream = await client.stream_task("release notes", service="review")
            assert (await client.get_task(stream.task_id)).service == "review"
            streamed: list[TaskEvent] = []
            async with asyncio.timeout(DEADLINE), stream:
                async for event in stream:
                    streamed.append(event)
                    if event.type == "InputRequiredEvent":
                        await client.respond(stream.task_id, "yes")
            sent = [(r.method, r.url.path) for r in recorded]
            assert_whole_log(streamed)
            assert await client.get_events(stream.task_id) == streamed
        path = f"/tasks/{stream.task_id}"
        assert sent == [("POST", "/tasks/stream"), ("GET", path), ("POST", f"{path}/events")]


async def test_sync_stream_task_cut_mid_way_resumes_with_a_get(review: Mesh) -> None:
    """The `POST` response is cut after event 1: the stream goes on with `GET
    /tasks/{id}/events` and `Last-Event-ID: 1`, yields each event once, and the task was
    created once, with the id the caller gave."""
    transport = CuttingTransport(cuts=[1])

    def scenario() -> tuple[str, list[TaskEvent], int]:
        with LlamaAgentsClient(review.url, transport=transport) as client:
            streamed = []
            with client.stream_task("release notes", "my-task", service="review") as stream:
                for event in stream:
                    streamed.append(event)
                    if event.type == "InputRequiredEvent":
                        client.respond(stream.task_id, "yes")
            return stream.task_id, streamed, len(client.list_tasks())

    task_id, streamed, tasks = await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE)
    assert task_id == "my-task"
    assert_whole_log(streamed)
    assert [(r.method, r.url.path) for r in transport.requests] == [
        ("POST", "/tasks/stream"),
        ("GET", "/tasks/my-task/events"),
    ]
    assert last_event_ids(transport.requests) == [None, "1"]
    assert tasks == 1


async def test_create_and_stream_over_http(review: Mesh) -> None:
    """`POST /tasks/stream`: 201, the id in `Location` and `x-task-id`, the log as JSON
    lines; a task that cannot be created gets its error status and no stream."""
    async with review.http.stream(
        "POST",
        "/tasks/stream",
        params={"format": "ndjson"},
        json={"input": "release notes", "service": "review", "task_id": "via-http"},
    ) as response:
        assert response.status_code == 201
        assert response.headers["location"] == "/tasks/via-http"
        assert response.headers["x-task-id"] == "via-http"
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.aiter_lines()
        first = TaskEvent.model_validate_json(await asyncio.wait_for(anext(lines), DEADLINE))
        assert (first.sequence, first.type) == (1, "Progress")
    for body, params, status in (
        ({"input": "again", "task_id": "via-http"}, {}, 409),
        ({"input": "x", "service": "nobody"}, {}, 404),
        ({"input": " "}, {}, 422),
        ({"input": "x", "service": "review"}, {"format": "xml"}, 422),
    ):
        refused = await review.http.post("/tasks/stream", json=body, params=params)
        assert refused.status_code == status, refused.text
        assert refused.headers["content-type"] == "application/json"
    tasks = (await review.http.get("/tasks")).json()
    assert [t["task_id"] for t in tasks] == ["via-http"]


async def test_stream_task_refusals_raise_before_it_returns(review: Mesh) -> None:
    task_id = await waiting_task(review)
    async with AsyncLlamaAgentsClient(review.url) as client:
        with pytest.raises(TaskExistsError, match=task_id):
            await client.stream_task("again", task_id)
        with pytest.raises(ServiceNotFoundError):
            await client.stream_task("x", service="nobody")
        with pytest.raises(SessionNotFoundError):
            await client.stream_task("x", service="review", session_id="no-session")
    async with AsyncLlamaAgentsClient(UNREACHABLE, timeout=5) as client:
        with pytest.raises(ConfigurationError, match="input"):
            await client.stream_task(" ")
        with pytest.raises(ConfigurationError, match="service"):
            await client.stream_task("x", service="a/b")
        with pytest.raises(ControlPlaneUnavailableError, match=UNREACHABLE):
            await client.stream_task("x")

    def scenario() -> None:
        with LlamaAgentsClient(review.url) as client, pytest.raises(TaskExistsError):
            client.stream_task("again", task_id)

    await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE)


# -- refusals, as typed errors ----------------------------------------------------------------


async def test_async_refusals_are_typed_errors(review: Mesh) -> None:
    task_id = await waiting_task(review)
    async with AsyncLlamaAgentsClient(review.url) as client:
        with pytest.raises(UnknownEventTypeError, match="not an event of 'review'"):
            await client.send_event(task_id, "Decision")  # 400
        with pytest.raises(EventRejectedError, match="text") as rejected:
            await client.send_event(task_id, "Drafted", {"text": 5})  # 422
        assert not isinstance(rejected.value, UnknownEventTypeError)
        with pytest.raises(TaskNotFoundError) as missing:
            await client.respond("nope", "yes")  # 404
        assert missing.value.task_id == "nope"
        with pytest.raises(TaskNotFoundError):
            await anext(client.stream_events("nope"))
        with pytest.raises(TaskNotFoundError):
            await client.get_events("nope")

        with pytest.raises(TaskExistsError, match=task_id):  # 409 on create
            await client.create_task("again", task_id)
        with pytest.raises(ServiceNotFoundError) as no_service:  # 404 on create
            await client.create_task("x", service="nobody")
        assert no_service.value.service_name == "nobody"
        with pytest.raises(SessionNotFoundError) as no_session:
            await client.create_task("x", service="review", session_id="no-session")
        assert no_session.value.session_id == "no-session"
        with pytest.raises(RequestTooLargeError) as too_large:  # 413
            await client.create_task("x" * (1024 * 1024 + 1))
        assert too_large.value.limit == 1024 * 1024

        await client.respond(task_id, "yes")
        await client.wait_for_result(task_id, timeout=DEADLINE)
        with pytest.raises(TaskFinishedError, match="completed"):  # 409 on send_event
            await client.respond(task_id, "too late")


async def test_sync_refusals_are_typed_errors(review: Mesh) -> None:
    task_id = await waiting_task(review)

    def scenario() -> None:
        with LlamaAgentsClient(review.url) as client:
            with pytest.raises(UnknownEventTypeError):
                client.send_event(task_id, "Decision", {})
            with pytest.raises(EventRejectedError):
                client.send_event(task_id, "Drafted", {})
            with pytest.raises(TaskNotFoundError):
                client.send_event("nope", "HumanResponseEvent", {"response": "yes"})
            with pytest.raises(TaskNotFoundError):
                next(iter(client.stream_events("nope")))
            with pytest.raises(TaskExistsError):
                client.create_task("again", task_id=task_id)
            with pytest.raises(ServiceNotFoundError):
                client.create_task("x", service="nobody")
            client.respond(task_id, "yes")
            client.wait_for_result(task_id, timeout=DEADLINE)
            with pytest.raises(TaskFinishedError):
                client.send_event(task_id, "HumanResponseEvent", {"response": "yes"})

    await asyncio.wait_for(asyncio.to_thread(scenario), DEADLINE * 2)


async def test_arguments_are_checked_before_sending() -> None:
    """Nothing is sent (the URL is unreachable): each mistake is a `ConfigurationError`."""
    async with AsyncLlamaAgentsClient(UNREACHABLE) as client:
        for call, message in (
            (client.send_event("t", "HumanResponseEvent", ["yes"]), "dict"),  # type: ignore[arg-type]
            (client.send_event("t", "HumanResponseEvent", {"at": object()}), "not JSON"),
            (client.send_event("t", " "), "class name"),
            (client.send_event("a/b", "X"), "task_id"),
            (client.send_event("", "X"), "task_id"),
            (client.respond("t", None), "string"),  # type: ignore[arg-type]
            (client.create_task("x", start_event=[1]), "start_event"),  # type: ignore[arg-type]
            (client.create_task("x", service="a/b"), "service"),
            (client.create_task("x", session_id=""), "session_id"),
            (client.get_events("t", after=-1), "after"),
            (client.list_tasks(status="done"), "unknown task status"),
            (client.list_tasks(page_size=0), "page_size"),
            (client.list_tasks(page_size=1001), "page_size"),
            (client.list_tasks(limit=-1), "limit"),
            (client.get_session("a/b"), "session_id"),
            (client.create_session("a b"), "spaces"),
        ):
            with pytest.raises(ConfigurationError, match=message):
                await call
        with pytest.raises(ConfigurationError, match="after"):
            client.stream_events("t", after=-2)
        with pytest.raises(ConfigurationError, match="page_size"):
            client.iter_tasks(page_size=0)  # before the first page is asked for
    with LlamaAgentsClient(UNREACHABLE) as sync_client:
        with pytest.raises(ConfigurationError, match="limit"):
            sync_client.iter_tasks(limit=1.5)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="dict"):
            sync_client.send_event("t", "X", "yes")  # type: ignore[arg-type]


class Echo(Workflow):
    """Answers at once: a stream that ends right after it starts."""

    @step
    async def echo(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=f"echo {ev.get('input')}")


def local_ports(http: httpx.Client | httpx.AsyncClient, ports: list[int]) -> None:
    """Record the client-side port of each response's connection (httpx's network stream)."""

    def record(response: httpx.Response) -> None:
        ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])

    async def arecord(response: httpx.Response) -> None:
        record(response)

    http.event_hooks["response"].append(arecord if isinstance(http, httpx.AsyncClient) else record)


async def test_a_finished_stream_leaves_its_connection_for_the_next_request(
    tmp_path: Path,
) -> None:
    """A stream read to its `TaskFinished` is read to its end too, so its connection is
    reused: one connection for many tasks, not a new one per task (which cost the control
    plane and the client a connect, an accept and a close each)."""
    from llama_agents import SimpleMessageQueue

    queue = SimpleMessageQueue()
    async with mesh(queue, tmp_path) as m:
        await m.add(WorkflowService(Echo(), queue, service_name="echo"))
        async_ports: list[int] = []
        async with AsyncLlamaAgentsClient(m.url) as client:
            local_ports(client.http, async_ports)
            async with asyncio.timeout(DEADLINE):
                for n in range(3):
                    stream = await client.stream_task(f"a{n}", service="echo")
                    events = [event async for event in stream]
                    assert events[-1].data["result"] == f"echo a{n}"
                    # Read whole, and a finished log read by the GET, alike.
                    assert await client.get_events(stream.task_id) == events
                    assert [e async for e in client.stream_events(stream.task_id)] == events
        assert len(async_ports) == 9 and len(set(async_ports)) == 1, async_ports

        def sync_run() -> list[int]:
            ports: list[int] = []
            with LlamaAgentsClient(m.url) as client:
                local_ports(client.http, ports)
                for n in range(3):
                    stream = client.stream_task(f"s{n}", service="echo")
                    events = list(stream)
                    assert events[-1].data["result"] == f"echo s{n}"
                    assert client.get_events(stream.task_id) == events
                    assert list(client.stream_events(stream.task_id)) == events
            return ports

        sync_ports = await asyncio.wait_for(asyncio.to_thread(sync_run), DEADLINE)
        assert len(sync_ports) == 9 and len(set(sync_ports)) == 1, sync_ports
    await queue.cleanup()
