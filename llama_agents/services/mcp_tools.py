"""An MCP server's tools as a tool service on the mesh (`ToolService.from_mcp`).

The service keeps one MCP session open with the server (see `mcp_session`), lists its tools
when it starts, and serves each as a tool: agents anywhere call them through
`MetaServiceTool` like any other tool service's. Names, descriptions and JSON schemas become
`ToolMetadata` through llama-index's `McpToolSpec`; a call's `CallToolResult` becomes the
tool's output (its text parts, or its structured content as JSON) and `isError` an error
result. A server that is down gives an error result, not a hang.

Needs `pip install 'llama-agents[mcp]'`; nothing here imports the MCP SDK until a service
is made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.tools import AsyncBaseTool, BaseTool, ToolMetadata, ToolOutput

from llama_agents._settings import env_float
from llama_agents._sync import run_sync
from llama_agents.errors import ConfigurationError, McpServerUnavailableError, NotStartedError
from llama_agents.message_consumers.base import StartConsumingCallable
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.services.mcp_session import (
    McpHttpServer,
    McpServer,
    McpSession,
    McpStdioServer,
    mcp_server,
    require_mcp_sdk,
)
from llama_agents.services.tool import ToolService

if TYPE_CHECKING:
    from mcp.types import CallToolResult

__all__ = [
    "McpHttpServer",
    "McpServerUnavailableError",
    "McpStdioServer",
    "McpTool",
    "McpToolService",
    "result_text",
]

logger = logging.getLogger("llama_agents.services.mcp")


class McpTool(AsyncBaseTool):
    """One tool of an MCP server, called over the service's kept-open session."""

    def __init__(self, metadata: ToolMetadata, session: McpSession) -> None:
        self._metadata = metadata
        self.session = session

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        name = self.metadata.get_name()
        if args:
            return self._output(
                f"MCP tools take named arguments only; got {len(args)} positional", kwargs, True
            )
        from mcp import MCPError

        try:
            result = await self.session.call_tool(name, kwargs)
        except McpServerUnavailableError as exc:
            return self._output(str(exc), kwargs, True)
        except MCPError as exc:
            return self._output(f"the MCP server refused {name!r}: {exc.message}", kwargs, True)
        return self._output(
            result_text(result),
            kwargs,
            bool(result.is_error),
            raw=result.model_dump(mode="json", by_alias=True, exclude_none=True),
        )

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Blocking variant; agents use `acall`."""
        return run_sync(self.acall(*args, **kwargs))

    def _output(
        self, content: str, kwargs: dict[str, Any], is_error: bool, raw: Any = None
    ) -> ToolOutput:
        return ToolOutput(
            content=content,
            tool_name=self.metadata.get_name(),
            raw_input={"args": [], "kwargs": kwargs},
            raw_output=raw if raw is not None else content,
            is_error=is_error,
        )


def result_text(result: CallToolResult) -> str:
    """A tool result as text: its text parts joined; with none, its structured content as
    JSON; other parts (images, audio, resources) named by their kind."""
    from mcp.types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    texts: list[str] = []
    others: list[str] = []
    for part in result.content:
        if isinstance(part, TextContent):
            texts.append(part.text)
        elif isinstance(part, EmbeddedResource) and isinstance(part.resource, TextResourceContents):
            texts.append(part.resource.text)
        elif isinstance(part, ResourceLink):
            others.append(f"[resource {part.uri}]")
        else:
            others.append(f"[{part.type} {getattr(part, 'mime_type', '')}]".replace(" ]", "]"))
    if not texts and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(texts + others)


class McpToolService(ToolService):
    """Serves the tools of one MCP server (see `ToolService.from_mcp`).

    Its session opens when the service starts (or at `open()`, to know the tools earlier),
    and closes when it stops taking messages (or at `close()`).
    """

    def __init__(
        self,
        server: str | Sequence[str] | McpServer,
        message_queue: BaseMessageQueue,
        service_name: str,
        description: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        allowed_tools: Sequence[str] | None = None,
        call_timeout: float | None = 60.0,
        reconnect_timeout: float = 10.0,
        startup_timeout: float | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> None:
        require_mcp_sdk()
        self.mcp_server = mcp_server(server, headers)
        super().__init__(
            [],
            message_queue,
            description or f"Tools of the MCP server {self.mcp_server}.",
            service_name,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        self._described = description is not None
        if allowed_tools is not None and not allowed_tools:
            raise ConfigurationError("allowed_tools is empty: the service would serve no tool")
        self.allowed_tools = list(allowed_tools) if allowed_tools is not None else None
        self.session = McpSession(
            self.mcp_server, call_timeout=call_timeout, reconnect_timeout=reconnect_timeout
        )
        self.startup_timeout = (
            startup_timeout if startup_timeout is not None else env_float("STARTUP_TIMEOUT", 60.0)
        )
        self._listed = False

    async def open(self) -> None:
        """Open the MCP session and list the server's tools (once; starting does it too).

        Retries for `startup_timeout` seconds (`LLAMA_AGENTS_STARTUP_TIMEOUT`, default 60): a
        server in another container may start after this one.
        """
        await self.session.open(timeout=self.startup_timeout)
        if self._listed:
            return
        self.tools = {tool.metadata.get_name(): tool for tool in await self._list_tools()}
        self._listed = True
        if not self._described and self.session.instructions:
            self.description = self.session.instructions
        logger.info(
            "%s serves the MCP server %s: %s",
            self.service_name,
            self.mcp_server,
            ", ".join(self.tools) or "no tools",
        )

    async def close(self) -> None:
        """Close the MCP session (a stdio server's process ends)."""
        await self.session.close()

    async def _list_tools(self) -> list[BaseTool]:
        """The server's tools, described by llama-index's `McpToolSpec` from their schemas."""
        from llama_index.tools.mcp import McpToolSpec  # type: ignore[import-untyped]

        spec = McpToolSpec(client=self.session, allowed_tools=self.allowed_tools)
        described = await spec.to_tool_list_async()
        tools: list[BaseTool] = []
        for function_tool in described:
            listed = function_tool.metadata
            name = listed.get_name()
            metadata = ToolMetadata(
                name=name,
                description=listed.description or f"{name} (a tool of {self.mcp_server})",
                fn_schema=listed.fn_schema,
            )
            tools.append(McpTool(metadata, self.session))
        return tools

    def tool_metadata(self, name: str) -> ToolMetadata:
        if not self._listed:
            raise NotStartedError(
                f"{self.service_name!r} has not listed its MCP server's tools yet: "
                "await its open() (or start it) first"
            )
        return super().tool_metadata(name)

    async def register_to_message_queue(self) -> StartConsumingCallable:
        """Open the session and list the tools before any call can arrive."""
        await self.open()
        return await super().register_to_message_queue()

    async def deregister_from_message_queue(self) -> None:
        """Finish the calls in hand, then close the session."""
        try:
            await super().deregister_from_message_queue()
        finally:
            await self.close()

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "mcp": {
                "server": str(self.mcp_server),
                "connected": self.session.is_open,
                "sessions_opened": self.session.sessions_opened,
            },
        }
