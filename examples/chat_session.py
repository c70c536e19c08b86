"""A chat session: each task continues the agent's memory where the previous one left it.

An `AgentService` runs a `FunctionAgent`. Tasks created in a session (`create_session()`,
then `session.run(...)`) run one at a time, in order, and each starts from the context the
previous one ended with (its chat memory, its `ctx.store` state), on whichever replica takes
it. A task outside the session starts afresh.

Run it:

    .venv/bin/python examples/chat_session.py

With no API key it uses the offline LLM (it answers from its tools, not from the chat), so
the example shows the memory itself: the chat history the agent had at each turn. Set
OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and LLAMA_AGENTS_LLM_MODEL, to chat with a real
model.
"""

import asyncio
import tempfile
from pathlib import Path

from llama_index.core.agent.workflow import FunctionAgent

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    AsyncLlamaAgentsClient,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
)
from llama_agents.llms import default_llm


async def main(state_dir: Path) -> None:
    queue = SimpleMessageQueue(port=0)
    control_plane = ControlPlaneServer(
        queue,
        AgentOrchestrator(llm=default_llm()),
        state_store=state_dir / "control_plane.sqlite3",
        port=0,
    )
    chat = AgentService(
        FunctionAgent(tools=[], llm=default_llm()),
        queue,
        description="Chats.",
        service_name="chat",
        port=0,
    )
    launcher = ServerLauncher([chat], control_plane, queue)
    serving = asyncio.create_task(launcher.alaunch_servers())
    try:
        await launcher.wait_until_ready()
        async with AsyncLlamaAgentsClient(control_plane.url) as client:
            session = await client.create_session()
            remembered = []
            for turn in ["My name is Ada.", "What is my name?"]:
                result = await session.run(turn, service="chat", timeout=60)
                said = [m.content for m in result.history if m.role.value == "user"]
                remembered.append(len(said))
                print(f"Turn {len(remembered)}: the agent's memory holds {said}")
            alone = await client.create_task("What is my name?", service="chat")
            fresh = await client.wait_for_result(alone, timeout=60)
            said = [m.content for m in fresh.history if m.role.value == "user"]
            print(f"Outside the session the memory holds {said}")
        print(
            f"Result: in the session the second turn saw {remembered[-1]} user messages, "
            f"outside it {len(said)}"
        )
    finally:
        launcher.shutdown()
        await serving


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as state_dir:
        asyncio.run(main(Path(state_dir)))
