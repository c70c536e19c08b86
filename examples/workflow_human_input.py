"""A workflow that asks a person, and an answer that comes after every process restarted.

The workflow drafts a reply, then asks for approval (`InputRequiredEvent`) and waits for a
`HumanResponseEvent`. The task shows `waiting_for_input` with the question. Here nobody
answers at once: the whole system is stopped (the waiting run is checkpointed into the
control plane's store and released: no process holds it), then started again from the same
state directory, and only then is the answer sent (`client.respond(...)`, the same as
`llama-agents tasks respond <id> "yes"`). The run resumes from its checkpoint on whichever
replica takes it; its first step does not run again.

Run it:

    .venv/bin/python examples/workflow_human_input.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory that both runs share.
"""

import asyncio
import tempfile
from pathlib import Path

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
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
    WorkflowService,
)
from llama_agents.llms import OfflineLLM

DRAFTS: list[str] = []  # how often the first step ran, in this process


class Drafted(Event):
    text: str


class Reply(Workflow):
    @step
    async def draft(self, ctx: Context, ev: StartEvent) -> Drafted:
        DRAFTS.append(ev.input)
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


def system(state_dir: Path) -> tuple[ServerLauncher, ControlPlaneServer]:
    queue = SimpleMessageQueue(port=0)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),  # unused here: the task names its service
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
    )
    replies = WorkflowService(Reply(), queue, service_name="replies", port=0)
    return ServerLauncher([replies], control_plane, queue), control_plane


async def main(state_dir: Path) -> None:
    launcher, control_plane = system(state_dir)
    serving = asyncio.create_task(launcher.alaunch_servers())
    await launcher.wait_until_ready()
    async with AsyncLlamaAgentsClient(control_plane.url) as client:
        task_id = await client.create_task("the late invoice", service="replies")
        async for event in client.stream_events(task_id):
            if event.type == "InputRequiredEvent":
                print(f"Asked: {event.data['prefix']}")
                break
    launcher.shutdown()  # everything stops; the waiting run is checkpointed and released
    await serving
    print("Stopped every process; nobody holds the run.")

    launcher, control_plane = system(state_dir)  # a new start, the same state
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            task = await client.get_task(task_id)
            print(f"After the restart the task is {task.status.value}")
            await client.respond(task_id, "yes")
            result = await client.wait_for_result(task_id, timeout=60)
        print(f"The first step ran {len(DRAFTS)} time(s).")
        print(f"Result: {result.result}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
