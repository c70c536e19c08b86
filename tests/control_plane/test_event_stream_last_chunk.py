"""A task's event stream ends in the same body message as its terminal event: the server
writes the last events and the response's end at once, not as two writes
(`streams.EventStreamResponse`); and it opens with an event, not a comment of its own (the
headers say the stream is open): every write carries events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llama_agents import ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import SqliteStateStore
from tests.support.control_plane import Worker, post_task, serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator


def events_scope(task_id: str, query: str = "", spec_version: str = "2.4") -> dict[str, Any]:
    """The ASGI scope of `GET /tasks/{task_id}/events?<query>`."""
    path = f"/tasks/{task_id}/events"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"control-plane")],
        "server": ("control-plane", 80),
        "client": ("127.0.0.1", 50000),
    }


async def stream_messages(app: Any, task_id: str, query: str) -> list[dict[str, Any]]:
    """The ASGI messages the app sends for `GET /tasks/{task_id}/events?<query>`."""
    scope = events_scope(task_id, query)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with asyncio.timeout(DEADLINE):
        await app(scope, receive, send)
    return sent


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlPlaneServer, Worker]]:
    """A served control plane on the embedded queue, and the worker its steps go to."""
    queue = SimpleMessageQueue()
    store = SqliteStateStore(tmp_path / "cp.db")
    control_plane = ControlPlaneServer(queue, FanOutOrchestrator(["worker"]), store, port=0)
    serving = await serve(control_plane)
    try:
        worker = Worker(queue)
        await worker.start()
        yield control_plane, worker
    finally:
        await stop(control_plane, serving)


@pytest.mark.parametrize("query", ["format=ndjson", "format=sse"])
async def test_the_terminal_event_and_the_end_of_the_stream_are_one_message(
    served: tuple[ControlPlaneServer, Worker], query: str
) -> None:
    control_plane, worker = served
    task_id = await post_task(control_plane, "x")
    streaming = asyncio.create_task(stream_messages(control_plane.app, task_id, query))
    [step] = await worker.steps.wait_for(1)
    await worker.answer(step, "done")
    sent = await streaming

    start, *bodies = sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert all(m["type"] == "http.response.body" for m in bodies)
    assert [m["more_body"] for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert all(b'"sequence"' in m["body"] for m in bodies), "a write without an event"
    last = bodies[-1]["body"].decode()
    assert "TaskFinished" in last, "the terminal event travels with the end, not after it"
    events = [
        json.loads(line.removeprefix("data: "))
        for line in b"".join(m["body"] for m in bodies).decode().splitlines()
        if line.startswith("{") or line.startswith("data: ")
    ]
    assert events[-1]["type"] == "TaskFinished" and events[-1]["data"]["status"] == "completed"
    assert [e["sequence"] for e in events] == sorted({e["sequence"] for e in events})


async def test_a_stream_stops_when_its_client_goes_away(
    served: tuple[ControlPlaneServer, Worker],
) -> None:
    # A task that never ends: without hearing the client leave, its stream would send
    # keep-alives to nobody for as long as the control plane runs.
    control_plane, worker = served
    task_id = await post_task(control_plane, "never answered")
    await worker.steps.wait_for(1)
    started = asyncio.Event()
    # uvicorn's version: its `send` does not fail once the client is gone.
    scope = events_scope(task_id, spec_version="2.3")

    async def receive() -> dict[str, Any]:
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        started.set()  # the stream is open; the client leaves now

    async with asyncio.timeout(DEADLINE):
        await control_plane.app(scope, receive, send)
    assert started.is_set()
    assert control_plane.manager.log.readers == 0, "the stream still follows the task"
