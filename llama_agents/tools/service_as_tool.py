"""`ServiceAsTool`: another service (an agent, a human, a component) used as a tool.

The call becomes a NEW_TASK for that service with this process's reply address; the
service answers the caller directly (not the control plane), matched by correlation id.
The same timeout rules as remote tools apply.
"""

from __future__ import annotations

import uuid
from typing import Any

from llama_index.core.tools import AsyncBaseTool, ToolMetadata, ToolOutput

from llama_agents._sync import run_sync
from llama_agents.errors import ConfigurationError, ToolCallTimeoutError
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.tools.meta_service_tool import tool_output
from llama_agents.tools.replies import ReplyInbox
from llama_agents.tools.service_tool import ServiceInput


class ServiceAsTool(AsyncBaseTool):
    """Calls the service `service_name` with one string `input` and returns its answer."""

    def __init__(
        self,
        tool_metadata: ToolMetadata,
        message_queue: BaseMessageQueue,
        service_name: str,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        self._metadata = tool_metadata
        self.message_queue = message_queue
        self.service_name = service_name
        self.timeout = timeout
        self.raise_timeout = raise_timeout

    @classmethod
    def from_service_definition(
        cls,
        message_queue: BaseMessageQueue,
        service_definition: ServiceDefinition,
        *,
        timeout: float = 60.0,
        raise_timeout: bool = False,
    ) -> ServiceAsTool:
        """The tool for a service, named and described as the service is."""
        metadata = ToolMetadata(
            name=service_definition.service_name,
            description=service_definition.description,
            fn_schema=ServiceInput,
        )
        return cls(
            metadata,
            message_queue,
            service_definition.service_name,
            timeout=timeout,
            raise_timeout=raise_timeout,
        )

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        text = str(kwargs.get("input", args[0] if args else ""))
        step = TaskDefinition(
            input=text, task_id=f"tool-{uuid.uuid4().hex}", step_id=uuid.uuid4().hex
        )
        request = QueueMessage(
            type=self.service_name,
            action=ActionTypes.NEW_TASK,
            publisher_id=f"service_tool.{self.service_name}",
            correlation_id=step.step_id,
            data=step.model_dump(mode="json"),
        )
        name = self.metadata.get_name()
        try:
            reply = await ReplyInbox.for_queue(self.message_queue).ask(request, self.timeout)
        except TimeoutError:
            message = f"service {self.service_name!r} did not answer within {self.timeout}s"
            if self.raise_timeout:
                raise ToolCallTimeoutError(message) from None
            return tool_output(name, message, args, kwargs, is_error=True)
        result = TaskResult.from_data(reply.data)
        if result.error:
            return tool_output(name, f"Error: {result.error}", args, kwargs, is_error=True)
        return tool_output(name, result.result, args, kwargs, is_error=False)

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Blocking variant; agents use `acall`."""
        return run_sync(self.acall(*args, **kwargs))


#: The original project's name for an agent service used as a tool.
AgentServiceTool = ServiceAsTool
