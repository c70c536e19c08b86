"""The README's "Server Flow" and "Low-Level API" sections, run as written (apart from the
agent constructors), against the scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    AsyncLlamaAgentsClient,
    CallableMessageConsumer,
    ControlPlaneServer,
    LlamaAgentsClient,
    QueueMessage,
    SimpleMessageQueue,
)
from tests.support.getting_started import SECRET, SecretTool, readme_rules
from tests.support.helpers import DEADLINE
from tests.support.llm_server import ScriptedLLMServer
from tests.support.processes import ROOT, ProcessGroup, free_port, offline_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def free_port_block(size: int = 4) -> int:
    """A base port whose next `size` ports are free (the README uses 8000-8003)."""
    for _ in range(50):
        base = free_port()
        try:
            for offset in range(size):
                import socket

                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


async def test_server_flow_as_written(scripted_llm: ScriptedLLMServer, tmp_path: Path) -> None:
    scripted_llm.respond = readme_rules()
    base = free_port_block()
    group = ProcessGroup()
    env = offline_env(
        {
            "SCRIPTED_LLM_URL": scripted_llm.base_url,
            "README_PORT_BASE": str(base),
            "LLAMA_AGENTS_STATE_PATH": str(tmp_path / "cp.db"),
        }
    )
    proc = await group.start(
        "readme",
        [sys.executable, str(ROOT / "tests" / "support" / "readme_server_flow.py")],
        env,
        ready_marker="all servers ready",
    )
    try:
        # The README's client part, in a thread: the sync client blocks.
        def client_part() -> str:
            client = LlamaAgentsClient(f"http://127.0.0.1:{base + 1}")  # i.e. the control plane
            task_id = client.create_task("What is the secret fact?")
            client.wait_for_result(task_id, timeout=DEADLINE)
            # returns TaskResult or None if not finished
            result = client.get_task_result(task_id)
            assert result is not None
            return result.result

        assert await asyncio.to_thread(client_part) == SECRET
        await proc.wait_for_line("Got result:", DEADLINE)
    finally:
        code = await group.stop("readme", signal.SIGINT)  # Ctrl-C
    assert code == 0, proc.output()
    got = [line for line in proc.lines if line.startswith("Got result:")]
    assert len(got) == 1 and "Cria" in got[0]


async def test_low_level_api_as_written_without_the_sleeps(
    scripted_llm: ScriptedLLMServer, tmp_path: Path
) -> None:
    from llama_index.core.agent.workflow import ReActAgent

    scripted_llm.respond = readme_rules()
    OpenAI = scripted_llm.llm
    secret = SecretTool()
    agent1 = ReActAgent(tools=[secret.tool()], llm=OpenAI())
    agent2 = ReActAgent(tools=[], llm=OpenAI())
    message_queue = SimpleMessageQueue(port=free_port())
    control_plane = ControlPlaneServer(
        message_queue=message_queue,
        orchestrator=AgentOrchestrator(llm=OpenAI()),
        state_store=None,
        port=free_port(),
    )
    services = [
        AgentService(
            agent=agent1,
            message_queue=message_queue,
            service_name="secret_fact_agent",
            description="Useful for getting the secret fact.",
            port=free_port(),
        ),
        AgentService(
            agent=agent2,
            message_queue=message_queue,
            service_name="dumb_fact_agent",
            description="Useful for getting random dumb facts.",
            port=free_port(),
        ),
    ]
    import os

    os.environ["LLAMA_AGENTS_STATE_PATH"] = str(tmp_path / "cp.db")
    try:
        # ---- the README's "Launching" block, minus its asyncio.sleep(1) calls ----
        # launch the message queue
        queue_task = asyncio.create_task(message_queue.launch_server())

        # launch the control plane
        control_plane_task = asyncio.create_task(control_plane.launch_server())

        # register the control plane as a consumer which returns a start_consuming_callable
        start_consuming_callable = await control_plane.register_to_message_queue()
        start_consuming_callables = [start_consuming_callable]

        # register the services
        control_plane_url = f"http://{control_plane.host}:{control_plane.port}"
        service_tasks = []
        for service in services:
            # first launch the service
            service_tasks.append(asyncio.create_task(service.launch_server()))

            # register the service to the message queue
            start_consuming_callable = await service.register_to_message_queue()
            start_consuming_callables.append(start_consuming_callable)

            # register the service to the control plane
            await service.register_to_control_plane(control_plane_url)

        # start consuming!
        start_consuming_tasks = []
        for start_consuming_callable in start_consuming_callables:
            task = asyncio.create_task(start_consuming_callable())
            start_consuming_tasks.append(task)
        # ---- the README's result consumer ----
        results: asyncio.Queue[QueueMessage] = asyncio.Queue()

        async def handle_result(message: QueueMessage) -> None:
            await results.put(message)

        human_consumer = CallableMessageConsumer(handler=handle_result, message_type="human")
        start_consuming_callable = await message_queue.register_consumer(human_consumer)
        human_task = asyncio.create_task(start_consuming_callable())

        async with AsyncLlamaAgentsClient(control_plane_url) as client:
            task_id = await client.create_task("What is the secret fact?")
            message = await asyncio.wait_for(results.get(), DEADLINE)
        assert message.data["task_id"] == task_id
        assert message.data["result"] == SECRET
    finally:
        os.environ.pop("LLAMA_AGENTS_STATE_PATH", None)
        for service in services:
            service.stop_server()
        control_plane.stop_server()
        message_queue.stop_server()
        await asyncio.gather(queue_task, control_plane_task, *service_tasks, return_exceptions=True)
        for task in [*start_consuming_tasks, human_task]:
            task.cancel()
