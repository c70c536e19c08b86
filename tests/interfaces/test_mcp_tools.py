"""MCP servers' tools on the mesh (`ToolService.from_mcp`), on both queues.

The MCP server is `tests/support/mcp_tool_server.py`, written with the official SDK: over
stdio the SDK's client starts it as a subprocess; over streamable HTTP it runs in its own OS
process (uvicorn on a free port) so a test can kill it. Agents call its tools through
`MetaServiceTool`, their model scripted; in the middle of a run the server is killed (and,
over HTTP, started again on the same port) and the run's next call still works.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from llama_index.core.agent.workflow import FunctionAgent

from llama_agents import BaseMessageQueue, MetaServiceTool
from llama_agents.errors import NotStartedError
from llama_agents.services.mcp_tools import (
    McpServerUnavailableError,
    McpStdioServer,
    McpToolService,
)
from llama_agents.services.tool import ToolService
from tests.conftest import QueueFactory
from tests.support.helpers import DEADLINE
from tests.support.llm_server import Call, ChatRequest, Reply, ScriptedLLMServer, Text, ToolCalls
from tests.support.processes import ROOT, ProcessGroup, free_port, offline_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SERVER_SCRIPT = str(ROOT / "tests" / "support" / "mcp_tool_server.py")
STDIO = [sys.executable, SERVER_SCRIPT]
HTTP_READY = "Uvicorn running on"
TOOLS = {"add", "shout", "whoami", "weather", "refuse"}


class KillBetweenCalls:
    """The scripted model of one agent run: call `whoami`; then `lose(pid)` (the server that
    answered is killed, and maybe started again) and call `shout`; then answer with both."""

    def __init__(self, lose: Callable[[int], Awaitable[None]]) -> None:
        self.lose = lose
        self.lost: list[int] = []

    async def __call__(self, request: ChatRequest) -> Reply:
        if not request.results:
            return ToolCalls([Call("whoami", {})])
        if not request.results_from("shout"):
            pid = int(request.results_from("whoami")[0])
            await self.lose(pid)
            self.lost.append(pid)
            return ToolCalls([Call("shout", {"text": "still here"})])
        return Text(" | ".join(request.results))


class HttpMcpServer:
    """The test MCP server over streamable HTTP, in its own process, on a fixed port."""

    def __init__(self, processes: ProcessGroup) -> None:
        self.processes = processes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> int:
        argv = [sys.executable, SERVER_SCRIPT, "--http", str(self.port)]
        proc = await self.processes.start("mcp", argv, offline_env(), ready_marker=HTTP_READY)
        return proc.pid

    async def kill(self) -> None:
        await self.processes.kill("mcp")


@pytest.fixture
async def http_server() -> AsyncIterator[HttpMcpServer]:
    processes = ProcessGroup()
    server = HttpMcpServer(processes)
    await server.start()
    try:
        yield server
    finally:
        await processes.close()


async def serving(service: McpToolService) -> asyncio.Task[None]:
    """Start the service (its MCP session opens, its tools are listed)."""
    return await service.launch_local()


async def stop(service: McpToolService, running: asyncio.Task[None]) -> None:
    await service.deregister_from_message_queue()  # closes the MCP session too
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def remote(service: ToolService, queue: BaseMessageQueue, name: str) -> MetaServiceTool:
    return await MetaServiceTool.from_tool_service(name, queue, tool_service=service)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def run_agent(
    service: McpToolService, queue: BaseMessageQueue, llm: ScriptedLLMServer
) -> str:
    tools = [await remote(service, queue, name) for name in ("whoami", "shout")]
    agent = FunctionAgent(tools=tools, llm=llm.llm())
    async with asyncio.timeout(DEADLINE * 2):
        return str(await agent.run(user_msg="Who serves you, and shout that you are here."))


# -- the server restarts in the middle of an agent's run ------------------------------------


async def test_stdio_server_killed_mid_run_and_the_next_call_works(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer
) -> None:
    queue = await queue_factory()
    service = ToolService.from_mcp(STDIO, message_queue=queue, service_name="mcp_tools")
    running = await serving(service)
    try:

        async def kill(pid: int) -> None:
            os.kill(pid, signal.SIGKILL)  # the child the SDK started

        script = KillBetweenCalls(kill)
        scripted_llm.respond = script
        answer = await run_agent(service, queue, scripted_llm)
        (first_pid,) = script.lost
        assert answer == f"{first_pid} | STILL HERE"
        assert service.session.sessions_opened == 2, "a new session after the drop"
        assert not alive(first_pid), "the dead server was reaped with its session"
        second_pid = (await (await remote(service, queue, "whoami")).acall()).content
        assert int(second_pid) != first_pid
    finally:
        await stop(service, running)
    assert not alive(int(second_pid)), "closing the service ends the server it started"


async def test_http_server_restarted_mid_run_and_the_next_call_works(
    queue_factory: QueueFactory, scripted_llm: ScriptedLLMServer, http_server: HttpMcpServer
) -> None:
    queue = await queue_factory()
    service = ToolService.from_mcp(
        http_server.url, message_queue=queue, service_name="mcp_http_tools"
    )
    running = await serving(service)
    restarted: list[int] = []
    try:

        async def restart(pid: int) -> None:
            await http_server.kill()
            restarted.append(await http_server.start())  # same port, a new process

        script = KillBetweenCalls(restart)
        scripted_llm.respond = script
        answer = await run_agent(service, queue, scripted_llm)
        (first_pid,) = script.lost
        assert answer == f"{first_pid} | STILL HERE"
        assert restarted and restarted[0] != first_pid
        assert service.session.sessions_opened == 2, "the new server knew no old session"
        whoami = await remote(service, queue, "whoami")
        assert (await whoami.acall()).content == str(restarted[0])
    finally:
        await stop(service, running)


async def test_a_server_that_stays_down_gives_an_error_result_then_recovers(
    queue_factory: QueueFactory, http_server: HttpMcpServer
) -> None:
    queue = await queue_factory()
    service = ToolService.from_mcp(
        http_server.url,
        message_queue=queue,
        service_name="mcp_down_tools",
        reconnect_timeout=1.5,
    )
    running = await serving(service)
    try:
        add = await remote(service, queue, "add")
        assert (await add.acall(a=2, b=3)).content == "5"
        await http_server.kill()
        started = time.monotonic()
        down = await add.acall(a=2, b=3)
        assert down.is_error, down.content
        assert "is unavailable (tried for 1.5s)" in down.content
        assert time.monotonic() - started < add.timeout, "an error result, not a hang"
        await http_server.start()
        assert (await add.acall(a=40, b=2)).content == "42"
    finally:
        await stop(service, running)


# -- what the tools look like and answer ------------------------------------------------------


async def test_one_session_serves_every_call_and_results_keep_their_meaning(
    queue_factory: QueueFactory,
) -> None:
    queue = await queue_factory()
    service = ToolService.from_mcp(STDIO, message_queue=queue, service_name="mcp_tools")
    with pytest.raises(NotStartedError, match="has not listed its MCP server's tools"):
        service.tool_metadata("add")
    running = await serving(service)
    try:
        assert set(service.tools) == TOOLS
        shout = service.tool_metadata("shout")
        assert shout.description == "Repeats the text in capital letters."
        parameters = shout.get_parameters_dict()
        assert parameters["required"] == ["text"]
        assert parameters["properties"]["text"]["description"] == "What to shout."

        whoami = await remote(service, queue, "whoami")
        pids = await asyncio.gather(*(whoami.acall() for _ in range(5)))
        assert len({pid.content for pid in pids}) == 1
        assert service.session.sessions_opened == 1, "one session, not one per call"

        weather = await (await remote(service, queue, "weather")).acall(city="Lima")
        assert not weather.is_error
        assert weather.content.replace("\n", "").replace(" ", "") == (
            '{"city":"Lima","celsius":21.5}'
        )
        refused = await (await remote(service, queue, "refuse")).acall(reason="no reason")
        assert refused.is_error and "refused: no reason" in refused.content
        wrong = await (await remote(service, queue, "add")).acall(a="two", b=3)
        assert wrong.is_error and "Input should be a valid integer" in wrong.content
    finally:
        await stop(service, running)


async def test_allowed_tools_and_a_served_tool_list(queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    service = ToolService.from_mcp(
        McpStdioServer(sys.executable, (SERVER_SCRIPT,)),
        message_queue=queue,
        service_name="mcp_some_tools",
        allowed_tools=["add", "shout"],
        port=0,
    )
    served = asyncio.create_task(service.launch_server())
    try:
        url = await service.wait_until_serving()
        assert set(service.tools) == {"add", "shout"}
        by_url = await MetaServiceTool.from_tool_service("add", queue, tool_service_url=url)
        assert by_url.metadata.get_parameters_dict()["required"] == ["a", "b"]
        assert (await by_url.acall(a=20, b=22)).content == "42"
        assert service.status()["mcp"]["connected"] is True
    finally:
        service.stop_server()
        await asyncio.wait_for(served, DEADLINE)
    assert not service.session.is_open, "stopping the service closed its MCP session"


async def test_a_server_that_cannot_start_fails_the_start_clearly() -> None:
    from llama_agents import SimpleMessageQueue

    service = ToolService.from_mcp(
        ["/nonexistent/mcp-server"],
        message_queue=SimpleMessageQueue(),
        service_name="mcp_missing",
        startup_timeout=0.5,
    )
    with pytest.raises(McpServerUnavailableError, match="FileNotFoundError"):
        await service.open()


def test_server_descriptions_are_checked() -> None:
    from llama_agents import SimpleMessageQueue
    from llama_agents.errors import ConfigurationError

    queue = SimpleMessageQueue()
    with pytest.raises(ConfigurationError, match="http\\(s\\):// URL"):
        ToolService.from_mcp("python server.py", message_queue=queue, service_name="x")
    with pytest.raises(ConfigurationError, match="headers are for MCP servers reached over HTTP"):
        ToolService.from_mcp(STDIO, message_queue=queue, service_name="x", headers={"a": "b"})
    with pytest.raises(ConfigurationError, match="allowed_tools is empty"):
        ToolService.from_mcp(STDIO, message_queue=queue, service_name="x", allowed_tools=[])
