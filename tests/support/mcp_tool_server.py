"""An MCP server written with the official SDK, for the tests: over stdio by default, over
streamable HTTP with `--http PORT` (it prints uvicorn's "Uvicorn running on" when ready).

    python tests/support/mcp_tool_server.py            # stdio (the SDK's client starts it)
    python tests/support/mcp_tool_server.py --http 8123

`whoami` answers the server's process id, so a test can kill the very process serving it.
"""

from __future__ import annotations

import argparse
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

server = MCPServer("test-tools", instructions="Arithmetic, shouting and the weather, for tests.")


class Weather(BaseModel):
    city: str
    celsius: float


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def shout(text: str = Field(description="What to shout.")) -> str:
    """Repeats the text in capital letters."""
    return text.upper()


@server.tool()
def whoami() -> str:
    """The process id of this MCP server."""
    return str(os.getpid())


@server.tool()
def weather(city: str) -> Weather:
    """The weather in a city, as structured content."""
    return Weather(city=city, celsius=21.5)


@server.tool()
def refuse(reason: str) -> str:
    """Always fails, with the reason."""
    raise ToolError(f"refused: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    port = parser.parse_args().http
    if port is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
