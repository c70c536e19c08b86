"""`ToolService`: llama-index tools run for other processes.

Agents elsewhere call these tools through `MetaServiceTool`: a NEW_TOOL_CALL arrives with
the caller's reply address and a correlation id; the answer (COMPLETED_TOOL_CALL) goes to
that caller alone. A tool that raises answers with the error and the service keeps running;
replicas of a tool service share the calls (they consume one queue). A call taken after its
caller gave up (its expiry passed) is not run, and an answer whose caller is gone is dropped
rather than failing the message, which would only run the tool again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.tools import BaseTool, ToolMetadata, adapt_to_async_tool

from llama_agents.errors import ConfigurationError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    TaskDefinition,
    TaskResult,
    ToolCall,
    ToolCallResult,
)
from llama_agents.services.base import BaseService, failed_result

if TYPE_CHECKING:
    from llama_agents.services.mcp_session import McpServer
    from llama_agents.services.mcp_tools import McpToolService

logger = logging.getLogger("llama_agents.services")


def describe_tool(metadata: ToolMetadata) -> dict[str, Any]:
    """A tool's metadata as JSON: name, description, and its parameters' JSON schema."""
    return {
        "name": metadata.get_name(),
        "description": metadata.description,
        "parameters": metadata.get_parameters_dict(),
        "return_direct": metadata.return_direct,
    }


class ToolService(BaseService):
    """Serves `tools` on the message fabric under `service_name`."""

    service_kind = "tool"

    def __init__(
        self,
        tools: list[BaseTool],
        message_queue: BaseMessageQueue,
        description: str = "Local Tool Service.",
        service_name: str = "default_tool_service",
        *,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> None:
        super().__init__(
            message_queue,
            service_name,
            description,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        names = [tool.metadata.get_name() for tool in tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(
                f"tool names must be unique; repeated: {', '.join(duplicates)}"
            )
        self.tools = {tool.metadata.get_name(): tool for tool in tools}

    @classmethod
    def from_mcp(
        cls,
        server: str | Sequence[str] | McpServer,
        *,
        message_queue: BaseMessageQueue,
        service_name: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
        allowed_tools: Sequence[str] | None = None,
        call_timeout: float | None = 60.0,
        reconnect_timeout: float = 10.0,
        startup_timeout: float | None = None,
        host: str | None = None,
        port: int | None = None,
        max_concurrent_tasks: int = 10,
    ) -> McpToolService:
        """A tool service serving the tools of an MCP server (`pip install 'llama-agents[mcp]'`).

        `server` is a streamable-HTTP URL (`http(s)://...`, with `headers`), a command that
        starts a stdio server (`["python", "server.py"]`), or an `McpStdioServer` /
        `McpHttpServer`. One MCP session is kept open while the service runs, opened again
        (within `reconnect_timeout` seconds) when it drops; `allowed_tools` serves only
        those; `call_timeout` bounds one call. The tools are listed when the service starts,
        or earlier with `await service.open()`. See `llama_agents.services.mcp_tools`.
        """
        from llama_agents.services.mcp_tools import McpToolService

        return McpToolService(
            server,
            message_queue,
            service_name,
            description,
            headers=headers,
            allowed_tools=allowed_tools,
            call_timeout=call_timeout,
            reconnect_timeout=reconnect_timeout,
            startup_timeout=startup_timeout,
            host=host,
            port=port,
            max_concurrent_tasks=max_concurrent_tasks,
        )

    def tool_metadata(self, name: str) -> ToolMetadata:
        """The metadata of the tool called `name` (KeyError if there is none)."""
        return self.tools[name].metadata

    async def process_message(self, message: QueueMessage, **kwargs: Any) -> None:
        if message.action is not ActionTypes.NEW_TOOL_CALL:
            raise self._unsupported(message)
        call = ToolCall.from_data(message.data)
        what = f"tool call {call.id_} ({call.tool_call_bundle.tool_name})"
        if self._expired(message, what):
            return
        result = await self.run_tool(call)
        answer = QueueMessage(
            type=message.reply_to or call.source_id,
            action=ActionTypes.COMPLETED_TOOL_CALL,
            correlation_id=message.correlation_id or call.id_,
            data=result.model_dump(mode="json"),
        )
        await self._reply(answer, what)

    async def run_tool(self, call: ToolCall) -> ToolCallResult:
        """Run one call; a missing tool or a raising tool gives an error result, not an error."""
        bundle = call.tool_call_bundle
        tool = self.tools.get(bundle.tool_name)
        if tool is None:
            return _error_result(
                call,
                f"no tool named {bundle.tool_name!r} in {self.service_name!r}; "
                f"available: {', '.join(sorted(self.tools)) or 'none'}",
            )
        try:
            output = await adapt_to_async_tool(tool).acall(*bundle.tool_args, **bundle.tool_kwargs)
        except Exception as exc:
            logger.warning("tool %s raised: %s", bundle.tool_name, exc)
            return _error_result(call, f"{type(exc).__name__}: {exc}")
        content = str(output.content)
        return ToolCallResult(
            id_=call.id_,
            tool_message=_tool_message(call, content),
            result=content,
            error=content if output.is_error else None,
        )

    async def run_task(self, task: TaskDefinition) -> TaskResult:
        return failed_result(
            task, f"{self.service_name!r} is a tool service: it takes tool calls, not tasks"
        )

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/tools")
        async def list_tools() -> list[dict[str, Any]]:
            return [describe_tool(tool.metadata) for tool in self.tools.values()]

        @app.get("/tools/{name}")
        async def get_tool(name: str) -> dict[str, Any]:
            tool = self.tools.get(name)
            if tool is None:
                raise HTTPException(status_code=404, detail=f"no tool named {name!r}")
            return describe_tool(tool.metadata)


def _tool_message(call: ToolCall, content: str) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.TOOL,
        content=content,
        additional_kwargs={"tool_call_id": call.id_, "name": call.tool_call_bundle.tool_name},
    )


def _error_result(call: ToolCall, error: str) -> ToolCallResult:
    content = f"Error: {error}"
    return ToolCallResult(
        id_=call.id_, tool_message=_tool_message(call, content), result=content, error=error
    )
