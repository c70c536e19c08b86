"""Agentic orchestrator with a tool service, run once with the LocalLauncher.

The "Getting Started" system, except that the secret-fact tool runs in a `ToolService`:
the agent holds a `MetaServiceTool`, a stand-in that sends each call over the message
queue to the tool service and waits for its answer. Everything runs in this process, on
the embedded queue, for one question.

Run it:

    .venv/bin/python examples/agentic_toolservice_local_single.py

With no API key it uses the offline LLM (it matches tool descriptions and answers with the
tool's output). Set OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and LLAMA_AGENTS_LLM_MODEL,
to use a real model.
"""

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    LocalLauncher,
    MetaServiceTool,
    SimpleMessageQueue,
    ToolService,
)
from llama_agents.llms import default_llm


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


async def main() -> None:
    message_queue = SimpleMessageQueue()

    # the tool runs in the tool service; the agent gets a stand-in for it
    tool_service = ToolService(
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)],
        message_queue=message_queue,
        service_name="secret_fact_tools",
    )
    remote_tool = await MetaServiceTool.from_tool_service(
        "get_the_secret_fact", message_queue, tool_service=tool_service
    )

    agent_server_1 = AgentService(
        agent=FunctionAgent(tools=[remote_tool], llm=default_llm()),
        message_queue=message_queue,
        description="Useful for getting the secret fact.",
        service_name="secret_fact_agent",
    )
    agent_server_2 = AgentService(
        agent=FunctionAgent(tools=[], llm=default_llm()),
        message_queue=message_queue,
        description="Useful for getting random dumb facts.",
        service_name="dumb_fact_agent",
    )
    control_plane = ControlPlaneServer(message_queue, AgentOrchestrator(llm=default_llm()))

    launcher = LocalLauncher(
        [agent_server_1, agent_server_2, tool_service], control_plane, message_queue
    )
    result = await launcher.alaunch_single("What is the secret fact?")
    print(f"Result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
