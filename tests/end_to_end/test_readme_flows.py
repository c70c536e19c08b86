"""Our README's "Server flow" and the original's "Low-Level API", run as written (apart from
the agent constructors), against the scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    AsyncLlamaAgentsClient,
    CallableMessageConsumer,
    ControlPlaneServer,
    QueueMessage,
    SimpleMessageQueue,
)
from tests.conftest import _in_ci
from tests.support.getting_started import SECRET, SecretTool, readme_rules
from tests.support.helpers import DEADLINE
from tests.support.llm_server import ScriptedLLMServer
from tests.support.processes import (
    free_port,
    offline_env,
    private_network_prefix,
    run_to_end,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_server_flow_as_written_with_the_default_ports(tmp_path: Path) -> None:
    """README "Getting started" + "Server flow", defaults and all, then its SDK block."""
    env = offline_env({"LLAMA_AGENTS_STATE_PATH": str(tmp_path / "cp.db")})
    prefix = await asyncio.to_thread(private_network_prefix)
    if prefix is not None:
        env["README_PRIVATE_NETWORK"] = "1"  # the README's ports are free in there
    elif not (_free(8000) and _free(8001)):
        message = "ports 8000/8001 are taken and no private network namespace is available"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: the README's defaults must be tested)")
        pytest.skip(message)
    argv = [*(prefix or []), sys.executable, "-m", "tests.support.readme_server_flow"]
    code, text = await run_to_end(argv, env, timeout=120)
    assert code == 0, text[-4000:]
    # The Getting Started block's own local run, then the server flow's client and consumer.
    assert f"Result: {SECRET}" in text, text[-4000:]
    assert f"CLIENT RESULT: {SECRET}" in text, text[-4000:]
    # The README's handler printed the one result (threads' prints may share a line).
    assert text.count("Got result:") == 1, text[-4000:]
    assert f"'result': {SECRET!r}" in text.split("Got result:")[1], text[-4000:]
    assert "address already in use" not in text.lower()


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
    # Set before the block, so a failure inside it is reported, not a name it did not reach.
    service_tasks: list[asyncio.Task[None]] = []
    start_consuming_tasks: list[asyncio.Task[None]] = []
    human_task: asyncio.Task[None] | None = None
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
        ended = await asyncio.gather(
            queue_task, control_plane_task, *service_tasks, return_exceptions=True
        )
        names = ["queue", "control plane", *(s.service_name for s in services)]
        for name, outcome in zip(names, ended, strict=True):
            if isinstance(outcome, BaseException):  # shown with a failure: why it never answered
                print(f"{name}: launch_server ended with {outcome!r}")
        for task in [*start_consuming_tasks, *([human_task] if human_task else [])]:
            task.cancel()
