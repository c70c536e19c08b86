"""`MetaServiceTool`: a local stand-in for a tool that runs in a `ToolService` elsewhere.

An agent holds it like any tool. Calling it publishes a NEW_TOOL_CALL to the tool service
with this process's reply address and a correlation id, and waits for the answer. Many
calls can be in flight at once; each answer reaches only its caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from llama_index.core.tools import AsyncBaseTool, ToolMetadata, ToolOutput

from llama_agents._sync import run_sync
from llama_agents.errors import ConfigurationError, ToolCallTimeoutError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    ToolCall,
    ToolCallBundle,
    ToolCallResult,
)
from llama_agents.tools.replies import ReplyInbox

logger = logging.getLogger("llama_agents.tools")


class MetaServiceTool(AsyncBaseTool):
    """Calls the tool `tool_metadata.name` of the tool service `tool_service_name`.

    Args:
        timeout: seconds to wait for the answer.
        raise_timeout: on timeout, raise `ToolCallTimeoutError` (True) or answer the agent
            with an error output saying the tool timed out (False, the default).
    """

    def __init__(
        self,
        tool_metadata: ToolMetadata,
        message_queue: BaseMessageQueue,
        tool_service_name: str,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        self._metadata = tool_metadata
        self.message_queue = message_queue
        self.tool_service_name = tool_service_name
        self.timeout = timeout
        self.raise_timeout = raise_timeout

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    @classmethod
    async def from_tool_service(
        cls,
        name: str,
        message_queue: BaseMessageQueue,
        tool_service: Any = None,
        tool_service_url: str | None = None,
        tool_service_definition: ServiceDefinition | None = None,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
        api_timeout: float = 10.0,
    ) -> MetaServiceTool:
        """The stand-in for tool `name`, described by a `ToolService` object in this process,
        or fetched from a served tool service (its URL, or its `ServiceDefinition`)."""
        if tool_service is not None:
            try:
                metadata = tool_service.tool_metadata(name)
            except KeyError:
                raise ConfigurationError(
                    f"tool service {tool_service.service_name!r} has no tool named {name!r}"
                ) from None
            service_name = tool_service.service_name
        else:
            if tool_service_url is None and tool_service_definition is not None:
                definition = tool_service_definition
                if definition.host is None or definition.port is None:
                    raise ConfigurationError(
                        f"service {definition.service_name!r} has no host and port to ask"
                    )
                tool_service_url = f"http://{definition.host}:{definition.port}"
            if tool_service_url is None:
                raise ConfigurationError(
                    "give a tool_service, a tool_service_url or a tool_service_definition"
                )
            metadata, service_name = await _fetch_metadata(tool_service_url, name, api_timeout)
        return cls(
            metadata, message_queue, service_name, timeout=timeout, raise_timeout=raise_timeout
        )

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the remote tool; wait for its answer (up to `timeout`)."""
        inbox = ReplyInbox.for_queue(self.message_queue)
        call = ToolCall(
            tool_call_bundle=ToolCallBundle(
                tool_name=self.metadata.get_name(), tool_args=list(args), tool_kwargs=kwargs
            ),
            source_id=inbox.reply_type,
        )
        request = QueueMessage(
            type=self.tool_service_name,
            action=ActionTypes.NEW_TOOL_CALL,
            publisher_id=f"meta_tool.{self.metadata.get_name()}",
            correlation_id=call.id_,
            data=call.model_dump(mode="json"),
        )
        try:
            reply = await inbox.ask(request, self.timeout)
        except TimeoutError:
            message = (
                f"tool {self.metadata.get_name()!r} of {self.tool_service_name!r} did not "
                f"answer within {self.timeout}s"
            )
            if self.raise_timeout:
                raise ToolCallTimeoutError(message) from None
            return tool_output(self.metadata.get_name(), message, args, kwargs, is_error=True)
        result = ToolCallResult.from_data(reply.data)
        return tool_output(
            self.metadata.get_name(), result.result, args, kwargs, is_error=result.error is not None
        )

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Blocking variant; agents use `acall`."""
        return run_sync(self.acall(*args, **kwargs))


def tool_output(
    name: str, content: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, is_error: bool
) -> ToolOutput:
    """What a remote call gives the agent: the answer (or the error) as a tool output."""
    return ToolOutput(
        content=content,
        tool_name=name,
        raw_input={"args": list(args), "kwargs": kwargs},
        raw_output=content,
        is_error=is_error,
    )


async def _fetch_metadata(url: str, name: str, timeout: float) -> tuple[ToolMetadata, str]:
    """Ask a served tool service for one tool's description and its own name."""
    base = url.rstrip("/")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=timeout) as client:
            service = await client.get("/")
            tool = await client.get(f"/tools/{name}")
    except httpx.HTTPError as exc:
        raise ConfigurationError(f"cannot reach the tool service at {base}: {exc}") from exc
    if tool.status_code == 404:
        raise ConfigurationError(f"the tool service at {base} has no tool named {name!r}")
    tool.raise_for_status()
    service.raise_for_status()
    described = tool.json()
    metadata = RemoteToolMetadata(
        name=described["name"],
        description=described.get("description", ""),
        return_direct=bool(described.get("return_direct", False)),
        parameters=described.get("parameters") or {},
    )
    return metadata, str(service.json()["service_name"])


@dataclass
class RemoteToolMetadata(ToolMetadata):
    """Metadata of a tool known only by its JSON schema (fetched from its tool service)."""

    parameters: dict[str, Any] = field(default_factory=dict)

    def get_parameters_dict(self) -> dict[str, Any]:
        if not self.parameters.get("properties"):
            return super().get_parameters_dict()
        return {
            k: v
            for k, v in self.parameters.items()
            if k in ("type", "properties", "required", "definitions", "$defs")
        }
