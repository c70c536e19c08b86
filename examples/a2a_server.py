"""The mesh answers an A2A client: the official a2a SDK's client talks to our control plane.

The control plane serves the A2A protocol (`pip install 'llama-agents[a2a]'`): its agent card
at `/.well-known/agent-card.json` lists the registered services as skills, and its JSON-RPC
endpoint `/a2a` takes messages. A message naming a skill (`skill_id` in its metadata) runs there;
one without is routed by the orchestrator. Here the system has an API key, which the A2A client
sends as a bearer token (the card says so).

The workflow drafts a reply and asks a person to approve it. Over A2A the run's events stream as
`working` updates, its question is `input-required`, the client answers with the next message in
the same task, and the result comes as an artifact before the final `completed`. The same task is
in our own API, CLI and monitor under the same id.

Run it:

    .venv/bin/python examples/a2a_server.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory.
"""

import asyncio
import tempfile
import uuid
from pathlib import Path

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import Message, Part, Role, SendMessageRequest, StreamResponse, TaskState
from workflows import Context, Workflow, step
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llama_agents import (
    AgentOrchestrator,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
    WorkflowService,
)
from llama_agents.llms import OfflineLLM

API_KEY = "example-key"


class Progress(Event):
    message: str


class Drafted(Event):
    text: str


class Reply(Workflow):
    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> Drafted:
        ctx.write_event_to_stream(Progress(message=f"drafting a reply about {ev.input}"))
        text = f"Dear customer, about {ev.input}: it is fixed."
        await ctx.store.set("draft", text)
        return Drafted(text=text)

    @step
    async def ask(self, ev: Drafted) -> InputRequiredEvent:
        return InputRequiredEvent(prefix=f"Send this reply? {ev.text!r} (yes/no)")

    @step
    async def send(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        draft = await ctx.store.get("draft")
        return StopEvent(result=f"sent: {draft}" if ev.response == "yes" else "not sent")


def message(text: str, *, skill: str | None = None, task_id: str = "") -> SendMessageRequest:
    said = Message(
        message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)], task_id=task_id
    )
    if skill is not None:
        said.metadata.update({"skill_id": skill})
    return SendMessageRequest(message=said)


def show(response: StreamResponse) -> None:
    """One streamed A2A event: a status update (state and words), or an artifact."""
    if response.HasField("status_update"):
        status = response.status_update.status
        state = TaskState.Name(status.state).removeprefix("TASK_STATE_").lower()
        print(f"  {state}: {get_message_text(status.message)}".rstrip(": "))
    elif response.HasField("artifact_update"):
        print(f"  artifact: {get_artifact_text(response.artifact_update.artifact)}")


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0, api_key=API_KEY)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),  # unused here: the message names its skill
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
        api_key=API_KEY,
    )
    replies = WorkflowService(
        Reply(), queue, service_name="replies", description="Drafts replies to customers."
    )
    launcher = ServerLauncher([replies], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(headers=bearer, timeout=60) as http:
            card = await A2ACardResolver(http, control_plane.url).get_agent_card()
            print(f"Agent card: {card.name}, skills {[s.id for s in card.skills]}")
            client = ClientFactory(ClientConfig(httpx_client=http)).create(card)

            task_id = ""
            async for response in client.send_message(message("the late invoice", skill="replies")):
                task_id = task_id or response.task.id  # the first response is the task
                show(response)
            print("Answering yes, in the same task")
            async for response in client.send_message(message("yes", task_id=task_id)):
                show(response)
            await client.close()

            task = (await http.get(f"{control_plane.url}/tasks/{task_id}")).json()
            print(f"The same task in our API: {task['status']} on {task['service']}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
