"""`ServiceComponent`: a remote service as a step of a `PipelineOrchestrator` pipeline."""

from __future__ import annotations

from typing import Any

from llama_agents.messages import ServiceDefinition
from llama_agents.orchestrators.pipeline_graph import ServiceStep


class ServiceComponent(ServiceStep):
    """A pipeline step done by a registered service (an agent, a tool-using agent, a human,
    a component service), built from the service itself or its definition."""

    description: str = ""

    @classmethod
    def from_service_definition(
        cls, definition: ServiceDefinition, **kwargs: Any
    ) -> ServiceComponent:
        component = cls(definition.service_name, **kwargs)
        component.description = definition.description
        return component

    @classmethod
    def from_service(cls, service: Any, **kwargs: Any) -> ServiceComponent:
        """From a service object (`AgentService`, `HumanService`, `ComponentService`, ...)."""
        return cls.from_service_definition(service.service_definition, **kwargs)
