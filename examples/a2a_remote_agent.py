"""A remote A2A agent as a service of the mesh: `A2AService`, and a person answering its question.

Any agent that speaks the A2A protocol can join the mesh (`pip install 'llama-agents[a2a]'`):
`A2AService(agent_card_url=...)` reads its agent card (the service's description comes from it,
so the orchestrator knows what it is good for) and sends it every step routed to it, with the
official a2a SDK's client. Its streamed updates become the task's events, its `input-required`
makes the task `waiting_for_input` with its question, and the answer a person sends to the task
(`client.respond(...)`, the same as `llama-agents tasks respond <id> ...`) goes back to it in the
same remote task. Its final artifact is the step's result.

The remote agent here is written with the a2a SDK's own server classes (an `AgentExecutor`
behind its `DefaultRequestHandler`), served by uvicorn on a free port: it asks which city, then
answers with a forecast it streams in two chunks.

Run it:

    .venv/bin/python examples/a2a_remote_agent.py

It needs no LLM and no broker: the offline LLM routes by the service's description, the embedded
queue, every server on a free port, state in a temporary directory.
"""

import asyncio
import socket
import tempfile
from pathlib import Path

import uvicorn
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

from llama_agents import (
    A2AService,
    AgentOrchestrator,
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
)
from llama_agents.llms import OfflineLLM

# -- the remote agent: someone else's, written with the a2a SDK -----------------------


class Forecaster(AgentExecutor):
    """Asks which city, then streams the forecast as an artifact in two chunks."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id and context.message
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        task = context.current_task
        if task is None:
            await event_queue.enqueue_event(
                new_task(
                    context.task_id,
                    context.context_id,
                    TaskState.TASK_STATE_SUBMITTED,
                    history=[context.message],
                )
            )
        if task is None or task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            await updater.start_work(updater.new_agent_message([Part(text="reading the map")]))
            await updater.requires_input(updater.new_agent_message([Part(text="Which city?")]))
            return
        city = context.get_user_input()
        await updater.start_work(updater.new_agent_message([Part(text=f"looking up {city}")]))
        await updater.add_artifact([Part(text=f"Sunny in {city}, ")], artifact_id="forecast")
        await updater.add_artifact(
            [Part(text="22 degrees.")], artifact_id="forecast", append=True, last_chunk=True
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def forecaster_app(url: str) -> Starlette:
    card = AgentCard(
        name="forecaster",
        description="Tells the weather forecast for a city.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="forecast", name="forecast", description="A city's forecast.", tags=["weather"]
            )
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=Forecaster(), task_store=InMemoryTaskStore(), agent_card=card
    )
    return Starlette(
        routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")]
    )


# -- the mesh: a control plane, and the remote agent as one of its services -----------


async def main(state_dir: Path) -> None:
    listening = socket.create_server(("127.0.0.1", 0))  # a free port for the remote agent
    remote_url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    remote = uvicorn.Server(uvicorn.Config(forecaster_app(remote_url), log_level="warning"))
    remote_serving = asyncio.create_task(remote.serve(sockets=[listening]))

    queue = SimpleMessageQueue(port=0)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
    )
    forecaster = A2AService(agent_card_url=remote_url, message_queue=queue, service_name="weather")
    launcher = ServerLauncher([forecaster], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        print(f"Service 'weather': {forecaster.description}")
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            task_id = await client.create_task("What is the weather forecast for my trip?")
            async for event in client.stream_events(task_id):
                if event.type == "A2AStatusUpdate" and event.data["text"]:
                    print(f"Remote {event.data['state']}: {event.data['text']}")
                elif event.type == "A2AArtifactUpdate":
                    print(f"Remote artifact chunk: {event.data['text']!r}")
                elif event.type == "InputRequiredEvent":
                    print(f"Asked: {event.data['prefix']} Answering: Lisbon")
                    await client.respond(task_id, "Lisbon")
            result = await client.wait_for_result(task_id, timeout=60)
        print(f"Result: {result.result}")
    finally:
        launcher.shutdown()
        await serving
        remote.should_exit = True
        await remote_serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
