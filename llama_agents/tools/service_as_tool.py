"""`ServiceAsTool`: another service (an agent, a human, a component) used as a tool.

The call becomes a NEW_TASK for that service with this process's reply address; the
service answers the caller directly (not the control plane), matched by correlation id.
The same timeout rules as remote tools apply.
"""

from __future__ import annotations

import uuid
from typing import Any

from llama_index.core.tools import ToolMetadata, ToolOutput

from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.messages import (
    ActionTypes,
    QueueMessage,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
)
from llama_agents.orchestrators.service_tool import ServiceInput
from llama_agents.tools.remote import RemoteTool


class ServiceAsTool(RemoteTool):
    """Calls the service `service_name` with one string `input` and returns its answer."""

    @property
    def service_name(self) -> str:
        return self.target

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

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        text = str(kwargs.get("input", args[0] if args else ""))
        step = TaskDefinition(
            input=text, task_id=f"tool-{uuid.uuid4().hex}", step_id=uuid.uuid4().hex
        )
        reply = await self._ask(
            QueueMessage(
                type=self.service_name,
                action=ActionTypes.NEW_TASK,
                publisher_id=f"service_tool.{self.service_name}",
                correlation_id=step.step_id,
                data=step.model_dump(mode="json"),
            ),
            args,
            kwargs,
        )
        if isinstance(reply, ToolOutput):
            return reply
        result = TaskResult.from_data(reply.data)
        if result.error:
            return self._output(f"Error: {result.error}", args, kwargs, is_error=True)
        return self._output(result.result, args, kwargs, is_error=False)


#: The original project's name for an agent service used as a tool.
AgentServiceTool = ServiceAsTool
