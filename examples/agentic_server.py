"""Agentic orchestrator with the ServerLauncher, driven through the client SDK.

The "Getting Started" system served the way a deployment serves it: the embedded queue,
the control plane and each agent service get their own HTTP server (`ServerLauncher`),
and a client creates a task over the control plane's HTTP API and waits for its result.
Every server takes a free port, and the control plane keeps its state in a temporary
SQLite file, so the example never collides with another program. When the answer is in,
it shuts the launcher down, as Ctrl-C would.

Run it:

    .venv/bin/python examples/agentic_server.py

With no API key it uses the offline LLM (it matches tool descriptions and answers with the
tool's output). Set OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and LLAMA_AGENTS_LLM_MODEL,
to use a real model.
"""

import asyncio
import tempfile
from pathlib import Path

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
)
from llama_agents.control_plane import SqliteStateStore
from llama_agents.llms import default_llm


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


async def main(state_dir: Path) -> None:
    message_queue = SimpleMessageQueue(port=0)  # port=0: any free port
    control_plane = ControlPlaneServer(
        message_queue,
        AgentOrchestrator(llm=default_llm()),
        state_store=SqliteStateStore(state_dir / "control_plane.sqlite3"),
        port=0,
    )
    agent_server_1 = AgentService(
        agent=FunctionAgent(
            tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=default_llm()
        ),
        message_queue=message_queue,
        description="Useful for getting the secret fact.",
        service_name="secret_fact_agent",
        port=0,
    )
    agent_server_2 = AgentService(
        agent=FunctionAgent(tools=[], llm=default_llm()),
        message_queue=message_queue,
        description="Useful for getting random dumb facts.",
        service_name="dumb_fact_agent",
        port=0,
    )

    launcher = ServerLauncher([agent_server_1, agent_server_2], control_plane, message_queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            task_id = await client.create_task("What is the secret fact?")
            result = await client.wait_for_result(task_id, timeout=60)
        print(f"Result: {result.result}")
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
