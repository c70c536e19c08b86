"""A service's HTTP face: the API key guards all of it but `/health`, its documentation too;
the face serves anything shaped like a service; `base.py` and `app.py` do not import each other.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import llama_agents.services.app as app_module
import llama_agents.services.base as base_module
from llama_agents import ActionTypes, BaseService, QueueMessage, SimpleMessageQueue
from llama_agents.messages import TaskDefinition, TaskResult
from llama_agents.metrics import FabricMetrics, ServiceMetrics
from llama_agents.services.app import create_service_app
from tests.support.helpers import DEADLINE

KEY = "s3cret-key"
GUARDED = ("/", "/docs", "/redoc", "/openapi.json")


class Echo(BaseService):
    async def run_task(self, task: TaskDefinition) -> TaskResult:
        return TaskResult(task_id=task.task_id, step_id=task.step_id, result=task.input)


async def served(monkeypatch: pytest.MonkeyPatch, key: str | None) -> AsyncIterator[str]:
    if key is None:
        monkeypatch.delenv("LLAMA_AGENTS_API_KEY", raising=False)
    else:
        monkeypatch.setenv("LLAMA_AGENTS_API_KEY", key)
    service = Echo(SimpleMessageQueue(), "echo", "Echoes its input.", port=0)
    serving = asyncio.create_task(service.launch_server())
    try:
        yield await service.wait_until_serving(DEADLINE)
    finally:
        service.stop_server()
        await asyncio.wait_for(serving, DEADLINE)


@pytest.fixture
async def locked(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The URL of a served service whose system has an API key."""
    async for url in served(monkeypatch, KEY):
        yield url


@pytest.fixture
async def open_service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The URL of a served service with no API key."""
    async for url in served(monkeypatch, None):
        yield url


async def test_docs_and_schema_need_the_key(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked, timeout=DEADLINE) as http:
        for path in (*GUARDED, "/no-such-route"):
            refused = await http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "API key" in refused.json()["detail"]
            wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, path

        for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
            for path in GUARDED:
                assert (await http.get(path, headers=headers)).status_code == 200, path
        schema = (await http.get("/openapi.json", headers={"X-API-Key": KEY})).json()
        assert "/process_message" in schema["paths"]
        docs = await http.get("/docs", headers={"X-API-Key": KEY})
        assert "swagger" in docs.text.lower()
        assert (await http.get("/no-such-route", headers={"X-API-Key": KEY})).status_code == 404

        health = await http.get("/health")  # probes need no key
        assert health.status_code == 200 and health.json()["status"] == "healthy"


async def test_without_a_key_docs_are_open(open_service: str) -> None:
    async with httpx.AsyncClient(base_url=open_service, timeout=DEADLINE) as http:
        for path in GUARDED:
            assert (await http.get(path)).status_code == 200, path


class Look:
    """Not a `BaseService`: just what the face asks of a service."""

    class Queue:
        is_connected = False
        is_healthy = False

        metrics = FabricMetrics()

        def health(self) -> dict[str, Any]:
            return {"healthy": False, "broker_connected": False}

    service_name = "lookalike"
    description = "Only looks like a service."
    api_key: str | None = None
    message_queue = Queue()
    metrics = ServiceMetrics("lookalike")
    metrics_open = False

    def __init__(self) -> None:
        self.handled: list[QueueMessage] = []

    def status(self) -> dict[str, Any]:
        return {"service_name": self.service_name, "handled": len(self.handled)}

    async def handle_message(self, message: QueueMessage, **kwargs: Any) -> None:
        self.handled.append(message)

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/extra")
        async def extra() -> str:
            return "mine"


async def test_the_face_serves_anything_shaped_like_a_service() -> None:
    look = Look()
    app = create_service_app(look)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://face") as http:
        message = QueueMessage(type="lookalike", action=ActionTypes.NEW_TASK, data={"x": 1})
        delivered = await http.post("/process_message", content=message.encode())
        assert delivered.json() == {"id_": message.id_, "status": "processed"}
        assert [m.id_ for m in look.handled] == [message.id_]
        assert (await http.get("/")).json() == {"service_name": "lookalike", "handled": 1}
        assert (await http.get("/extra")).json() == "mine"
        assert "llama_agents_steps_in_flight" in (await http.get("/metrics")).text
        health = await http.get("/health")  # its queue is down: not ready
        assert health.status_code == 503 and health.json()["broker_connected"] is False
        bad = await http.post("/process_message", content=b"not a message")
        assert bad.status_code == 422


def imported_modules(module: Any) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports in functions too)."""
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_service_and_its_face_do_not_import_each_other() -> None:
    assert "llama_agents.services.app" not in imported_modules(base_module)
    assert not any(
        name.startswith("llama_agents.services") for name in imported_modules(app_module)
    )
    # The package hands the face to the service.
    assert BaseService.app_factory is create_service_app
