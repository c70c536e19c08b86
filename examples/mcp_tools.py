"""An MCP server's tools on the mesh: `ToolService.from_mcp`, used by an agent elsewhere.

A tiny MCP server (written with the official `mcp` SDK, below) runs over stdio: the tool
service starts it as a subprocess, keeps one MCP session open with it, and serves its tools on
the message queue. The agent holds `MetaServiceTool` stand-ins, exactly as for any tool
service; it never speaks MCP itself. Everything else runs in this process, on the embedded
queue, for one question.

Run it (needs `pip install 'llama-agents[mcp]'`):

    .venv/bin/python examples/mcp_tools.py

With no API key it uses the offline LLM (it matches tool names and descriptions and answers
with the tool's output). Set OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and
LLAMA_AGENTS_LLM_MODEL, to use a real model. `python examples/mcp_tools.py --serve` runs the
MCP server alone, over stdio, as the tool service does.
"""

import asyncio
import sys

from llama_index.core.agent.workflow import FunctionAgent

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


def serve_mcp() -> None:
    """The MCP server: two text tools, over stdio."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("text-tools", log_level="WARNING")

    @server.tool()
    def shout(text: str) -> str:
        """Shouts the text: repeats it in capital letters."""
        return text.upper()

    @server.tool()
    def count_words(text: str) -> int:
        """Counts the words of a text."""
        return len(text.split())

    server.run()  # stdio


async def main() -> None:
    message_queue = SimpleMessageQueue()

    # The tool service starts the MCP server (this file, with --serve) and serves its tools.
    tool_service = ToolService.from_mcp(
        [sys.executable, __file__, "--serve"],
        message_queue=message_queue,
        service_name="text_tools",
    )
    await tool_service.open()  # opens the MCP session and lists the tools, for the agent
    print(f"MCP tools: {', '.join(sorted(tool_service.tools))}")
    tools = [
        await MetaServiceTool.from_tool_service(name, message_queue, tool_service=tool_service)
        for name in sorted(tool_service.tools)
    ]

    agent_service = AgentService(
        agent=FunctionAgent(tools=tools, llm=default_llm()),
        message_queue=message_queue,
        description="Useful to shout a text, or to count its words.",
        service_name="text_agent",
    )
    control_plane = ControlPlaneServer(message_queue, AgentOrchestrator(llm=default_llm()))
    launcher = LocalLauncher([agent_service, tool_service], control_plane, message_queue)
    # Stopping the launcher stops the tool service, which closes the session: the MCP
    # server's process ends with it.
    result = await launcher.alaunch_single("Shout: llamas are wonderful")
    print(f"Result: {result}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve_mcp()
    else:
        asyncio.run(main())
