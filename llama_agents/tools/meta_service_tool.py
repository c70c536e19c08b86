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
from llama_index.core.tools import ToolMetadata, ToolOutput

from llama_agents._auth import auth_headers, configured_api_key
from llama_agents.errors import ConfigurationError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    ToolCall,
    ToolCallBundle,
    ToolCallResult,
)
from llama_agents.tools.remote import RemoteTool
from llama_agents.tools.replies import ReplyInbox

logger = logging.getLogger("llama_agents.tools")


class MetaServiceTool(RemoteTool):
    """Calls the tool `tool_metadata.name` of the tool service `tool_service_name`."""

    def __init__(
        self,
        tool_metadata: ToolMetadata,
        message_queue: BaseMessageQueue,
        tool_service_name: str,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
    ) -> None:
        super().__init__(
            tool_metadata,
            message_queue,
            tool_service_name,
            timeout=timeout,
            raise_timeout=raise_timeout,
        )

    @property
    def tool_service_name(self) -> str:
        return self.target

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
        call = ToolCall(
            tool_call_bundle=ToolCallBundle(
                tool_name=self.metadata.get_name(), tool_args=list(args), tool_kwargs=kwargs
            ),
            source_id=ReplyInbox.for_queue(self.message_queue).reply_type,
        )
        reply = await self._ask(
            QueueMessage(
                type=self.tool_service_name,
                action=ActionTypes.NEW_TOOL_CALL,
                publisher_id=f"meta_tool.{self.metadata.get_name()}",
                correlation_id=call.id_,
                data=call.model_dump(mode="json"),
            ),
            args,
            kwargs,
        )
        if isinstance(reply, ToolOutput):
            return reply
        result = ToolCallResult.from_data(reply.data)
        return self._output(result.result, args, kwargs, is_error=result.error is not None)


async def _fetch_metadata(url: str, name: str, timeout: float) -> tuple[ToolMetadata, str]:
    """Ask a served tool service for one tool's description and its own name."""
    base = url.rstrip("/")
    try:
        headers = auth_headers(configured_api_key())
        async with httpx.AsyncClient(base_url=base, timeout=timeout, headers=headers) as client:
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
