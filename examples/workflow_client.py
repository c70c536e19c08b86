"""LlamaIndex's own `WorkflowClient` (`pip install llama-agents-client`) drives our mesh.

The control plane speaks the HTTP API of LlamaIndex's workflow server, so client code written
for `llama-agents-server` runs unchanged against it: every workflow service is a workflow named
by its service name, a handler is a task of ours (`handler_id` is the task id). Here the system
has an API key, which the client sends as a bearer token through its `httpx_client=` argument.

The workflow drafts a reply and asks a person to approve it: the client streams the run's
events, answers the question with `send_event`, and reads the handler's result. The same run is
a task in our own API, CLI (`llama-agents tasks get <handler_id>`) and monitor.

Run it:

    .venv/bin/python examples/workflow_client.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory.
"""

import asyncio
import tempfile
from pathlib import Path

import httpx
from llama_agents.client import WorkflowClient
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


class Drafted(Event):
    text: str


class Reply(Workflow):
    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> Drafted:
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


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0, api_key=API_KEY)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),  # unused here: every run names its workflow
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
        api_key=API_KEY,
    )
    replies = WorkflowService(Reply(), queue, service_name="replies", port=0)
    launcher = ServerLauncher([replies], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=control_plane.url, headers=bearer) as http:
            client = WorkflowClient(httpx_client=http)  # unchanged user code from here on
            print(f"Workflows: {(await client.list_workflows()).workflows}")
            handler = await client.run_workflow_nowait(
                "replies", start_event=StartEvent(input="the late invoice")
            )
            async for event in client.get_workflow_events(handler.handler_id):
                print(f"Event: {event.type}")
                if event.type == "InputRequiredEvent":
                    print(f"Asked: {event.value['_data']['prefix']}")
                    await client.send_event(handler.handler_id, HumanResponseEvent(response="yes"))
            done = await client.get_handler(handler.handler_id)
            assert done.result is not None
            print(f"Handler {done.status}: {done.result.value['result']}")
            task = (await http.get(f"/tasks/{handler.handler_id}")).json()
            print(f"The same run in our API: task {task['status']} on {task['service']}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
