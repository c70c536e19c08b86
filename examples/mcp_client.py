"""The mesh as an MCP server: the official `mcp` client drives the control plane's `/mcp`.

Any MCP client (an IDE, a desktop assistant, another agent framework) can use the mesh
through four tools: `run_task`, `get_task`, `list_services` and `respond`. Here the official
Python client runs a task on a workflow that asks a person before it finishes: while the run
works, its events arrive as MCP progress notifications; `run_task` returns the task id and the
question; `respond` answers it and returns the result. `/mcp` takes the system's API key like
every other route (a bearer token).

Run it (needs `pip install 'llama-agents[mcp]'`):

    .venv/bin/python examples/mcp_client.py

It needs no LLM and no broker: the embedded queue, every server on a free port, state in a
temporary directory.
"""

import asyncio
import tempfile
from pathlib import Path

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
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


async def progress(value: float, total: float | None, message: str | None) -> None:
    print(f"Progress {value:g}: {message}")


async def use_the_mesh(url: str) -> None:
    """What any MCP client does: the official Python SDK, with the API key as a bearer token."""
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx2.AsyncClient(headers=bearer, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        print(f"Tools: {', '.join(tool.name for tool in tools.tools)}")
        services = await session.call_tool("list_services", {})
        names = [s["name"] for s in (services.structured_content or {}).get("result", [])]
        print(f"Services: {', '.join(names)}")

        asked = await session.call_tool(
            "run_task",
            {"input": "the late invoice", "service": "replies"},
            progress_callback=progress,
        )
        waiting = asked.structured_content or {}
        print(f"Task {waiting['status']}; asked: {waiting['question']}")

        done = await session.call_tool(
            "respond", {"task_id": waiting["task_id"], "text": "yes"}, progress_callback=progress
        )
        print(f"Result: {(done.structured_content or {})['result']}")
        read = await session.call_tool("get_task", {"task_id": waiting["task_id"]})
        print(f"get_task: {(read.structured_content or {})['status']}")


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0, api_key=API_KEY)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=OfflineLLM()),  # unused here: the task names its service
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
        api_key=API_KEY,
    )
    replies = WorkflowService(
        Reply(), queue, service_name="replies", description="Drafts and sends replies.", port=0
    )
    launcher = ServerLauncher([replies], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        await use_the_mesh(f"{control_plane.url}/mcp")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
