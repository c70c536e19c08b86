"""Two control planes as replicas on one PostgreSQL database: either answers anything.

Control plane A and control plane B share one PostgreSQL store (`state_store=
"postgresql://...?schema=..."`, or `LLAMA_AGENTS_STATE_URL`) and one message queue. A task is
created through A; its events are streamed through B as the run goes; then A stops, as in a
rolling deploy, and the person's answer goes to B, which finishes the task. Nothing in the
task belonged to A: B learns of A's writes from PostgreSQL's notifications, and the replica
holding the recovery lease takes over whatever a stopped replica left.

Run it:

    .venv/bin/python examples/control_plane_replicas.py

It needs a PostgreSQL server: `LLAMA_AGENTS_STATE_URL` (a `postgresql://` URL), else the
local one at `postgresql://postgres@127.0.0.1:5432/postgres`. It creates a schema of its own
and drops it at the end. No LLM and no broker: the embedded queue, in this process.
"""

import asyncio
import os
import uuid

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
    SimpleMessageQueue,
    WorkflowService,
)
from llama_agents.llms import OfflineLLM


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


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg  # the `postgres` extra

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def main() -> None:
    server = os.environ.get("LLAMA_AGENTS_STATE_URL") or "postgresql://postgres@127.0.0.1/postgres"
    schema = f"example_{uuid.uuid4().hex[:8]}"
    state_url = f"{server.split('?')[0]}?schema={schema}"
    queue = SimpleMessageQueue()
    consuming = await queue.launch_local()
    planes = {
        name: ControlPlaneServer(
            queue, AgentOrchestrator(llm=OfflineLLM()), state_store=state_url, port=0
        )
        for name in ("A", "B")
    }
    serving = {name: asyncio.create_task(p.launch_server()) for name, p in planes.items()}
    replies = WorkflowService(Reply(), queue, service_name="replies")
    try:
        for plane in planes.values():
            await plane.wait_until_serving()
        await replies.launch_local()
        async with (
            AsyncLlamaAgentsClient(planes["A"].url) as a,
            AsyncLlamaAgentsClient(planes["B"].url) as b,
        ):
            await a.register_service(replies.service_definition)
            print(f"Services on B: {', '.join(s.service_name for s in await b.list_services())}")
            task_id = await a.create_task("the late invoice", service="replies")
            async for event in b.stream_events(task_id):  # streamed through the other one
                print(f"B streams #{event.sequence} {event.type}")
                if event.type == "InputRequiredEvent":
                    break
            planes["A"].stop_server()  # A goes away, as in a rolling deploy
            await serving.pop("A")
            print("A stopped")
            await b.respond(task_id, "yes")
            result = await b.wait_for_result(task_id, timeout=60)
            task = await b.get_task(task_id)
        print(f"Task {task.status.value} through B")
        print(f"Result: {result.result}")
    finally:
        await replies.deregister_from_message_queue()
        for name, task in serving.items():
            planes[name].stop_server()
            await task
        consuming.cancel()
        await drop_schema(server.split("?")[0], schema)


if __name__ == "__main__":
    asyncio.run(main())
