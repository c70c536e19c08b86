"""A served control plane with one worker the test answers for, for SDK, CLI and monitor tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_agents import ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import SqliteStateStore
from tests.support.control_plane import Worker, serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator

UNREACHABLE = "http://127.0.0.1:1"


class RequestLog:
    """Pure ASGI middleware state: which requests reached the control plane, awaitable.

    Lets a test know a long-poll is being held by the server before it answers the step.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._changed = asyncio.Condition()

    async def record(self, scope: dict[str, Any]) -> None:
        async with self._changed:
            query = scope.get("query_string", b"").decode()
            self.seen.append(f"{scope['path']}?{query}" if query else scope["path"])
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[str], bool]) -> None:
        async with asyncio.timeout(DEADLINE), self._changed:
            await self._changed.wait_for(lambda: any(predicate(seen) for seen in self.seen))

    def middleware(self, app: Any) -> Any:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await self.record(scope)
            await app(scope, receive, send)

        return asgi


@dataclass
class System:
    control_plane: ControlPlaneServer
    worker: Worker
    requests: RequestLog

    @property
    def url(self) -> str:
        return self.control_plane.url

    async def next_step(self, count: int = 1) -> Any:
        """The `count`-th step the worker received."""
        return (await self.worker.steps.wait_for(count))[count - 1]


@asynccontextmanager
async def served_system(tmp_path: Path, api_key: str | None = None) -> AsyncIterator[System]:
    """A served control plane with one `worker` service the test answers for."""
    queue = SimpleMessageQueue()
    control_plane = ControlPlaneServer(
        queue,
        FanOutOrchestrator(["worker"]),
        SqliteStateStore(tmp_path / "cp.db"),
        port=0,
        api_key=api_key,
    )
    requests = RequestLog()
    control_plane.app.add_middleware(requests.middleware)
    worker = Worker(queue)
    consuming = await worker.start()
    task = await serve(control_plane)
    try:
        yield System(control_plane, worker, requests)
    finally:
        await stop(control_plane, task)
        consuming.cancel()


def is_long_poll(task_id: str) -> Callable[[str], bool]:
    return lambda seen: seen.startswith(f"/tasks/{task_id}/result?wait=")
