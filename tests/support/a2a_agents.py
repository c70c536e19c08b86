"""A remote A2A agent written with the official SDK's server classes, served by uvicorn.

`Forecaster` is an `AgentExecutor`: on a new task it streams a `working` update and asks which
city (`input-required`); the next message in the task gets the forecast as an artifact and
completes it. A message saying "fail" fails the task instead; one saying "slowly" works until
the test opens its gate (then asks), or its task is cancelled. It records what it was sent
and what was cancelled, and its server refuses requests without its own bearer key (not the
mesh's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from a2a.helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    TaskState,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware

from llama_agents._auth import ApiKeyMiddleware
from llama_agents._serving import HttpServer

REMOTE_KEY = "remote-agent-key"
DESCRIPTION = "Tells the weather forecast for a city."
QUESTION = "Which city?"


@dataclass
class Seen:
    """One message the remote agent took: its task, and its text."""

    task_id: str
    context_id: str
    text: str


@dataclass
class Forecaster(AgentExecutor):
    """Works, asks for a city once, then answers with the forecast (see the module doc)."""

    seen: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    #: Set when a "slowly" task started working (it goes on once `gate` is set), and when a
    #: task was cancelled.
    working: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        text = context.get_user_input()
        self.seen.append(Seen(context.task_id, context.context_id, text))
        task = context.current_task
        if task is None:  # a new task: the SDK wants it enqueued before its updates
            assert context.message is not None
            await event_queue.enqueue_event(
                new_task(
                    context.task_id,
                    context.context_id,
                    TaskState.TASK_STATE_SUBMITTED,
                    history=[context.message],
                )
            )
        asked = task is not None and task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        if "fail" in text:
            await updater.failed(updater.new_agent_message([Part(text="the forecast is down")]))
            return
        if "slowly" in text:
            await updater.start_work(updater.new_agent_message([Part(text="thinking slowly")]))
            self.working.set()
            await self.gate.wait()  # until the test opens it, or the task is cancelled
        if not asked:
            await updater.start_work(updater.new_agent_message([Part(text=f"reading: {text}")]))
            await updater.requires_input(updater.new_agent_message([Part(text=QUESTION)]))
            return
        await updater.start_work(updater.new_agent_message([Part(text=f"looking up {text}")]))
        await updater.add_artifact(
            [Part(text=f"Sunny in {text}, ")], artifact_id="forecast", name="forecast"
        )
        await updater.add_artifact(
            [Part(text="22 degrees.")],
            artifact_id="forecast",
            name="forecast",
            append=True,
            last_chunk=True,
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        self.cancelled.append(context.task_id)
        self.cancel_seen.set()
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


@dataclass
class RemoteAgentServer:
    agent: Forecaster
    http: HttpServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


def forecaster_card(url: str, *, streaming: bool) -> AgentCard:
    return AgentCard(
        name="forecaster",
        description=DESCRIPTION,
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="forecast", name="forecast", description=DESCRIPTION, tags=["weather"])
        ],
    )


@asynccontextmanager
async def remote_agent(*, streaming: bool = True) -> AsyncIterator[RemoteAgentServer]:
    """The forecaster served on a free port (its card names the port it got)."""
    agent = Forecaster()
    http: HttpServer

    async def card_with_port(card: AgentCard) -> AgentCard:
        return forecaster_card(f"http://127.0.0.1:{http.port}/", streaming=streaming)

    card = forecaster_card("http://127.0.0.1/", streaming=streaming)
    handler = DefaultRequestHandler(
        agent_executor=agent, task_store=InMemoryTaskStore(), agent_card=card
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(card, card_modifier=card_with_port),
            *create_jsonrpc_routes(handler, rpc_url="/"),
        ],
        middleware=[Middleware(ApiKeyMiddleware, api_key=REMOTE_KEY)],
    )
    http = HttpServer(app, host="127.0.0.1", port=0)
    serving = asyncio.create_task(http.serve())
    try:
        await http.wait_started()
        yield RemoteAgentServer(agent, http)
    finally:
        http.stop()
        await asyncio.wait_for(serving, 15)
        await handler.aclose()
