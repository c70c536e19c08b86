"""Tools that stand for services: service tools for orchestrators, remote tools for agents."""

from llama_agents.tools.meta_service_tool import MetaServiceTool
from llama_agents.tools.replies import ReplyInbox
from llama_agents.tools.service_as_tool import AgentServiceTool, ServiceAsTool
from llama_agents.tools.service_component import ServiceComponent
from llama_agents.tools.service_tool import ServiceInput, ServiceTool

__all__ = [
    "AgentServiceTool",
    "MetaServiceTool",
    "ReplyInbox",
    "ServiceAsTool",
    "ServiceComponent",
    "ServiceInput",
    "ServiceTool",
]
