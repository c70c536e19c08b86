"""A registered service seen as a tool, so an LLM orchestrator can choose it."""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import BaseTool, ToolMetadata, ToolOutput
from pydantic import BaseModel, Field

from llama_agents.errors import OrchestratorError
from llama_agents.messages import ServiceDefinition


class ServiceInput(BaseModel):
    """What a service step takes: the input for that service, in words."""

    input: str = Field(description="The input or question to send to this service.")


class ServiceTool(BaseTool):
    """The name and description of a service, as a tool an LLM can pick.

    It only describes the service: the orchestrator turns a call into a message on the
    service's queue, so calling it directly is an error.
    """

    def __init__(
        self, name: str, description: str, fn_schema: type[BaseModel] = ServiceInput
    ) -> None:
        self._metadata = ToolMetadata(name=name, description=description, fn_schema=fn_schema)

    @classmethod
    def from_service_definition(cls, definition: ServiceDefinition) -> ServiceTool:
        return cls(definition.service_name, definition.description)

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def __call__(self, *args: Any, **kwargs: Any) -> ToolOutput:
        raise OrchestratorError(
            f"{self._metadata.name!r} is a service: its calls are sent over the message "
            "queue by the orchestrator, not run in this process"
        )
