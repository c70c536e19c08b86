"""Workflows the tests serve, and a small served system to run them on.

`Review` is the issue's custom two-step workflow: it drafts (streaming a custom event and
keeping state in `ctx.store`), then asks a person (`InputRequiredEvent`) and finishes with
their answer. Each instance counts how often each step ran.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llama_agents import BaseMessageQueue, ControlPlaneServer, WorkflowService
from llama_agents.control_plane import SqliteStateStore
from tests.support.control_plane import serve, stop
from tests.support.orchestrators import FanOutOrchestrator


class Progress(Event):
    """A custom event the workflow streams."""

    message: str


class Drafted(Event):
    text: str


class Review(Workflow):
    """Draft (stream progress, keep the draft in the store), ask for approval, finish."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(timeout=None, **kwargs)
        self.calls: Counter[str] = Counter()
        self.ledger = os.environ.get("LLAMA_AGENTS_TEST_LEDGER")

    def _ran(self, name: str) -> None:
        self.calls[name] += 1
        if self.ledger:
            replica = os.environ.get("LLAMA_AGENTS_TEST_REPLICA", "?")
            with open(self.ledger, "a", encoding="utf-8") as out:
                out.write(f"{replica} {name}\n")

    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> Drafted:
        self._ran("draft")
        topic = str(ev.get("input", ""))
        ctx.write_event_to_stream(Progress(message=f"drafting {topic}"))
        await ctx.store.set("draft", f"a note about {topic}")
        return Drafted(text=f"a note about {topic}")

    @step
    async def ask(self, ctx: Context, ev: Drafted) -> InputRequiredEvent:
        self._ran("ask")
        return InputRequiredEvent(prefix=f"Approve {ev.text!r}?")  # type: ignore[call-arg]

    @step
    async def decide(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        self._ran("decide")
        draft = await ctx.store.get("draft")
        return StopEvent(result={"draft": draft, "approved": ev.response == "yes"})


class Slow(Workflow):
    """One step that waits until the test opens its gate (or the run is cancelled)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    @step
    async def work(self, ctx: Context, ev: StartEvent) -> StopEvent:
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return StopEvent(result=f"done {ev.get('input')}")


@dataclass
class Mesh:
    """A served control plane and workflow services on one queue."""

    queue: BaseMessageQueue
    control_plane: ControlPlaneServer
    http: httpx.AsyncClient
    services: dict[str, WorkflowService]

    @property
    def url(self) -> str:
        return self.control_plane.url

    async def add(self, service: WorkflowService) -> WorkflowService:
        await service.launch_local()
        await self.control_plane.register_service(service.service_definition)
        self.services[service.service_name] = service
        return service

    async def create(self, input: str, **fields: Any) -> str:
        response = await self.http.post("/tasks", json={"input": input, **fields})
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])


@asynccontextmanager
async def mesh(queue: BaseMessageQueue, tmp_path: Path) -> AsyncIterator[Mesh]:
    control_plane = ControlPlaneServer(
        queue, FanOutOrchestrator([]), SqliteStateStore(tmp_path / "cp.sqlite3"), port=0
    )
    serving = await serve(control_plane)
    services: dict[str, WorkflowService] = {}
    try:
        async with httpx.AsyncClient(base_url=control_plane.url, timeout=30) as http:
            yield Mesh(queue, control_plane, http, services)
    finally:
        for service in services.values():
            await service.deregister_from_message_queue()
        await stop(control_plane, serving)
