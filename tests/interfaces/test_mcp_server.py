"""The mesh as an MCP server: the official `mcp` client drives the control plane's `/mcp`.

A real control plane (with an API key) serves a real `WorkflowService` (`Review`: it drafts,
streams a `Progress` event, then asks a person). Over MCP a client runs a task, watches its
events arrive as progress notifications, gets the question, answers it with `respond`, and
reads the answer; refusals come back as MCP tool errors. On both queues.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from llama_agents import ControlPlaneServer, WorkflowService
from llama_agents.control_plane import SqliteStateStore
from tests.conftest import QueueFactory
from tests.support.control_plane import serve, stop
from tests.support.helpers import DEADLINE
from tests.support.orchestrators import FanOutOrchestrator
from tests.support.processes import ROOT, offline_env
from tests.support.workflows import Review

KEY = "mcp-test-key"
QUESTION = "Approve 'a note about release notes'?"
RESULT = {"result": {"draft": "a note about release notes", "approved": True}}


@dataclass
class Mesh:
    control_plane: ControlPlaneServer

    @property
    def url(self) -> str:
        return f"{self.control_plane.url}/mcp"


@pytest.fixture
async def mesh(queue_factory: QueueFactory, tmp_path: Path) -> AsyncIterator[Mesh]:
    """A control plane with an API key, and a `Review` workflow service."""
    queue = await queue_factory()
    control_plane = ControlPlaneServer(
        queue,
        FanOutOrchestrator([]),
        SqliteStateStore(tmp_path / "cp.sqlite3"),
        port=0,
        api_key=KEY,
    )
    serving = await serve(control_plane)
    review = WorkflowService(Review(), queue, service_name="review", event_coalesce_s=0)
    await review.launch_local()
    await control_plane.register_service(review.service_definition)
    try:
        yield Mesh(control_plane)
    finally:
        await review.deregister_from_message_queue()
        await stop(control_plane, serving)


@asynccontextmanager
async def mcp_session(url: str, key: str | None = KEY) -> AsyncIterator[ClientSession]:
    """The official client's session with `/mcp`, sending `key` as a bearer token."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    timeout = httpx2.Timeout(DEADLINE, read=DEADLINE * 2)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        async with asyncio.timeout(DEADLINE):
            await session.initialize()
        yield session


class Progress:
    """The progress notifications one tool call received."""

    def __init__(self) -> None:
        self.notes: list[tuple[float, str]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        async with self._changed:
            self.notes.append((progress, message or ""))
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[tuple[float, str]]:
        async with asyncio.timeout(DEADLINE), self._changed:
            await self._changed.wait_for(lambda: len(self.notes) >= count)
        return self.notes

    @property
    def kinds(self) -> list[tuple[int, str]]:
        """(sequence, event type) of each note."""
        return [(int(value), message.split(" ", 1)[0]) for value, message in self.notes]


async def call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    async with asyncio.timeout(DEADLINE * 2):
        return await session.call_tool(tool, arguments)


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    return "".join(getattr(part, "text", "") for part in result.content)


# -- the API key ------------------------------------------------------------------------------


async def test_mcp_is_refused_without_the_key(mesh: Mesh) -> None:
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    headers = {"accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=DEADLINE) as http:
        for key in (None, "wrong-key"):
            sent = headers | ({"authorization": f"Bearer {key}"} if key else {})
            refused = await http.post(mesh.url, json=hello, headers=sent)
            assert refused.status_code == 401, refused.text
        allowed = await http.post(
            mesh.url, json=hello, headers=headers | {"authorization": f"Bearer {KEY}"}
        )
        assert allowed.status_code == 200, allowed.text
    with pytest.raises(ExceptionGroup) as refused_by_the_client:
        async with mcp_session(mesh.url, key=None):
            pass
    assert refused_by_the_client.group_contains(MCPError, match="error response", depth=2)


# -- a task that asks a person, answered over MCP -------------------------------------------


async def test_run_task_reports_progress_asks_and_respond_finishes_it(mesh: Mesh) -> None:
    async with mcp_session(mesh.url) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == {
            "run_task",
            "get_task",
            "list_services",
            "respond",
        }

        progress = Progress()
        async with asyncio.timeout(DEADLINE * 2):
            asked = await session.call_tool(
                "run_task",
                {"input": "release notes", "service": "review"},
                progress_callback=progress,
            )
        assert not asked.is_error, asked
        waiting = asked.structured_content
        assert waiting is not None
        assert waiting["status"] == "waiting_for_input"
        assert waiting["question"] == QUESTION
        assert waiting["prompt"]["type"] == "InputRequiredEvent"
        task_id = waiting["task_id"]
        await progress.wait_for(2)
        assert progress.kinds == [(1, "Progress"), (2, "InputRequiredEvent")]
        assert "drafting release notes" in progress.notes[0][1]

        read = await call(session, "get_task", task_id=task_id)
        assert read.structured_content is not None
        assert read.structured_content["question"] == QUESTION

        progress = Progress()
        async with asyncio.timeout(DEADLINE * 2):
            answered = await session.call_tool(
                "respond", {"task_id": task_id, "text": "yes"}, progress_callback=progress
            )
        assert not answered.is_error, answered
        done = answered.structured_content
        assert done is not None
        assert (done["task_id"], done["status"]) == (task_id, "completed")
        assert done["data"] == RESULT and done["question"] is None
        await progress.wait_for(1)
        assert progress.kinds[-1] == (3, "TaskFinished"), "only events after the answer"

        final = await call(session, "get_task", task_id=task_id)
        assert final.structured_content is not None
        assert final.structured_content["status"] == "completed"
        assert final.structured_content["data"] == RESULT

        services = await call(session, "list_services")
        review = {"name": "review", "description": "Runs a workflow.", "kind": "workflow"}
        assert services.structured_content == {"result": [review | {"live": True}]}

        again = await call(session, "respond", task_id=task_id, text="no")
        assert f"task {task_id} is completed" in error_text(again)


async def test_refusals_are_tool_errors(mesh: Mesh) -> None:
    async with mcp_session(mesh.url) as session:
        unknown_task = await call(session, "get_task", task_id="no-such-task")
        assert "no task with id 'no-such-task'" in error_text(unknown_task)
        unknown_service = await call(session, "run_task", input="hi", service="nobody")
        assert "no service named 'nobody' is registered" in error_text(unknown_service)
        blank = await call(session, "run_task", input="   ")
        assert "input must not be blank" in error_text(blank)
        not_asked = await call(session, "respond", task_id="no-such-task", text="yes")
        assert "no task with id 'no-such-task'" in error_text(not_asked)


# -- without the extra ------------------------------------------------------------------------

WITHOUT_MCP = """
import asyncio, sys, tempfile
from pathlib import Path
sys.modules["mcp"] = None  # as if `llama-agents[mcp]` were not installed
sys.modules["llama_index.tools.mcp"] = None
import httpx
from llama_agents import ControlPlaneServer, SimpleMessageQueue, ToolService
from llama_agents.control_plane import SqliteStateStore
from llama_agents.errors import ConfigurationError
from tests.support.orchestrators import FanOutOrchestrator

try:
    ToolService.from_mcp(["server"], message_queue=SimpleMessageQueue(), service_name="t")
except ConfigurationError as exc:
    print("REFUSED:", exc)

async def main():
    store = SqliteStateStore(Path(tempfile.mkdtemp()) / "cp.sqlite3")
    cp = ControlPlaneServer(SimpleMessageQueue(), FanOutOrchestrator([]), store, port=0)
    serving = asyncio.create_task(cp.launch_server())
    await cp.wait_until_serving()
    async with httpx.AsyncClient() as http:
        answer = await http.post(cp.url + "/mcp", json={})
        health = await http.get(cp.url + "/health")
    print("MCP:", answer.status_code, answer.json()["detail"])
    print("HEALTH:", health.status_code)
    await cp.close()
    await serving

asyncio.run(main())
"""


async def test_without_the_extra_the_mesh_runs_and_says_what_to_install() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WITHOUT_MCP,
        cwd=ROOT,
        env=offline_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE * 2):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    refused = next(line for line in lines if line.startswith("REFUSED:"))
    assert "pip install 'llama-agents[mcp]'" in refused
    served = next(line for line in lines if line.startswith("MCP:"))
    assert served.startswith("MCP: 501") and "pip install 'llama-agents[mcp]'" in served
    assert "HEALTH: 200" in lines


async def test_serving_mcp_leaves_the_process_logging_alone() -> None:
    """The SDK's `MCPServer()` would `logging.basicConfig` a process that has no handler."""
    code = (
        "import logging\n"
        "from llama_agents.control_plane.mcp_server import _tools\n"
        "_tools(None)\n"
        "root = logging.getLogger()\n"
        "print('ROOT:', len(root.handlers), root.level)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=ROOT, env=offline_env(), stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(DEADLINE * 2):
        out, _ = await process.communicate()
    assert process.returncode == 0
    assert f"ROOT: 0 {logging.WARNING}" in out.decode()
