"""A served mesh with an API key, and the official A2A client pointed at it.

`a2a_mesh` serves a control plane (with the system's API key) on a free port; services are
added in process. `a2a_client` is the SDK's own client (`ClientFactory`), resolving the card
through an HTTP client that carries the key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest, StreamResponse

from llama_agents import BaseMessageQueue, ControlPlaneServer, WorkflowService
from llama_agents.control_plane import SqliteStateStore
from llama_agents.orchestrators.base import BaseOrchestrator
from tests.support.control_plane import serve, stop
from tests.support.orchestrators import FanOutOrchestrator

API_KEY = "a2a-test-key"
BEARER = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class A2AMesh:
    """A served control plane (API key set) and the services added to it."""

    queue: BaseMessageQueue
    control_plane: ControlPlaneServer
    http: httpx.AsyncClient
    services: list[WorkflowService] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.control_plane.url

    async def add(self, service: WorkflowService) -> WorkflowService:
        await service.launch_local()
        await self.control_plane.register_service(service.service_definition)
        self.services.append(service)
        return service


@asynccontextmanager
async def a2a_mesh(
    queue: BaseMessageQueue, tmp_path: Path, orchestrator: BaseOrchestrator | None = None
) -> AsyncIterator[A2AMesh]:
    control_plane = ControlPlaneServer(
        queue,
        orchestrator or FanOutOrchestrator([]),
        SqliteStateStore(tmp_path / "cp.sqlite3"),
        port=0,
        api_key=API_KEY,
    )
    serving = await serve(control_plane)
    services: list[WorkflowService] = []
    try:
        async with httpx.AsyncClient(
            base_url=control_plane.url, headers=BEARER, timeout=30
        ) as http:
            mesh = A2AMesh(queue, control_plane, http, services)
            yield mesh
    finally:
        for service in services:
            await service.deregister_from_message_queue()
        await stop(control_plane, serving)


@asynccontextmanager
async def a2a_client(
    url: str, *, streaming: bool = True, polling: bool = False
) -> AsyncIterator[Client]:
    """The SDK's client for the agent at `url`, sending the system's key."""
    async with httpx.AsyncClient(headers=BEARER, timeout=30) as http:
        factory = ClientFactory(
            ClientConfig(httpx_client=http, streaming=streaming, polling=polling)
        )
        client = await factory.create_from_url(url)
        try:
            yield client
        finally:
            await client.close()


def user_message(
    text: str, *, skill: str | None = None, task_id: str = "", context_id: str = ""
) -> SendMessageRequest:
    message = Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )
    if skill is not None:
        message.metadata.update({"skill_id": skill})
    return SendMessageRequest(message=message)


async def collect(client: Client, request: SendMessageRequest) -> list[StreamResponse]:
    """Everything the agent sends back for one message, until it ends the stream."""
    return [response async for response in client.send_message(request)]
