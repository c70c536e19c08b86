"""Any llama-index Workflow as a service, its events streamed to the client as they happen.

A research workflow of three steps writes progress events to its stream
(`ctx.write_event_to_stream`). Served by a `WorkflowService`, each task sent to it is one
run; the control plane keeps the run's events in the task's log, numbered, and the client
reads them live (server-sent events, resumable after a disconnect). `stream_task()` creates
the task and streams its events in one request; `stream_events(task_id)` follows a task
created earlier. The task names its service, so no orchestrator is involved, and it sends
no result message (`publish_result=False`): this client reads the result from the stream.

Run it:

    .venv/bin/python examples/workflow_streaming.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory.
"""

import asyncio
import tempfile
from pathlib import Path

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from llama_agents import (
    AgentOrchestrator,
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
    WorkflowService,
)
from llama_agents.llms import OfflineLLM


class Progress(Event):
    """A progress note the workflow streams to whoever watches."""

    stage: str
    note: str


class Sources(Event):
    titles: list[str]


class Research(Workflow):
    @step
    async def search(self, ctx: Context, ev: StartEvent) -> Sources:
        ctx.write_event_to_stream(Progress(stage="search", note=f"looking up {ev.input!r}"))
        titles = ["Llamas of the Andes", "Camelids, a field guide"]
        ctx.write_event_to_stream(Progress(stage="search", note=f"found {len(titles)} sources"))
        await ctx.store.set("topic", ev.input)
        return Sources(titles=titles)

    @step
    async def summarise(self, ctx: Context, ev: Sources) -> StopEvent:
        topic = await ctx.store.get("topic")
        ctx.write_event_to_stream(Progress(stage="summarise", note="writing the summary"))
        return StopEvent(result=f"{topic}: summarised from {', '.join(ev.titles)}.")


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),  # unused here: the task names its service
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
    )
    research = WorkflowService(
        Research(),
        queue,
        service_name="research",
        description="Researches a topic and summarises it.",
        port=0,
    )
    launcher = ServerLauncher([research], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            stream = await client.stream_task(
                "baby llamas", service="research", publish_result=False
            )
            async for event in stream:
                if event.type == "Progress":
                    print(f"#{event.sequence} {event.data['stage']}: {event.data['note']}")
                elif event.is_terminal:
                    print(f"#{event.sequence} finished: {event.data['status']}")
            result = await client.wait_for_result(stream.task_id, timeout=60)
        print(f"Result: {result.result}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
