"""Tools for agents: remote tools that run in other services, and services called as tools."""

from llama_agents.tools.meta_service_tool import MetaServiceTool
from llama_agents.tools.replies import ReplyInbox
from llama_agents.tools.service_as_tool import AgentServiceTool, ServiceAsTool
from llama_agents.tools.service_component import ServiceComponent

__all__ = [
    "AgentServiceTool",
    "MetaServiceTool",
    "ReplyInbox",
    "ServiceAsTool",
    "ServiceComponent",
]
