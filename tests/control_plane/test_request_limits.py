"""Request bodies above the limit get 413 however they are sent; blank inputs are refused;
a large input is stored once and shown shortened (issue 9, item 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from llama_agents import ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import SqliteStateStore
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator

LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    control_plane = ControlPlaneServer(
        SimpleMessageQueue(),
        FanOutOrchestrator(["worker"]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
        max_request_bytes=LIMIT,
    )
    task = await serve(control_plane)
    async with httpx.AsyncClient(base_url=control_plane.url, timeout=DEADLINE) as client:
        yield client
    await stop(control_plane, task)


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    yield b'{"input": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_a_declared_body_above_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    response = await http.post("/tasks", json={"input": "x" * (LIMIT + 1)})
    assert response.status_code == 413
    assert f"{LIMIT:,} bytes" in response.json()["detail"]


async def test_a_chunked_body_above_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    # No Content-Length: the body is counted as it arrives.
    response = await http.post("/tasks", content=_chunks(LIMIT * 2), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text[:300]
    assert f"{LIMIT:,} bytes" in response.json()["detail"]
    events = await http.post("/tasks/any/events", content=_chunks(LIMIT * 2), headers=JSON)
    assert events.status_code == 413


async def test_a_chunked_body_under_the_limit_is_taken(http: httpx.AsyncClient) -> None:
    response = await http.post("/tasks", content=_chunks(LIMIT // 2), headers=JSON)
    assert response.status_code == 200, response.text[:300]


async def test_a_blank_input_is_refused(http: httpx.AsyncClient) -> None:
    for blank in ("", "   ", "\n\t "):
        response = await http.post("/tasks", json={"input": blank})
        assert response.status_code == 422, (blank, response.text)


async def test_a_large_input_is_stored_once_and_listed_shortened(
    http: httpx.AsyncClient,
) -> None:
    big = "y" * (LIMIT - 1024)
    created = await http.post("/tasks", json={"input": big})
    assert created.status_code == 200
    task_id = created.json()["task_id"]
    record = await http.get(f"/tasks/{task_id}")
    assert record.json()["input"] == big
    # The record carries the input once (steps refer to it, they do not copy it).
    assert record.text.count(big) == 1
    [summary] = (await http.get("/tasks")).json()
    assert summary["task_id"] == task_id
    assert len(summary["input"]) < 1000
