"""Tools that stand for services: service tools for orchestrators, remote tools for agents."""

from llama_agents.tools.meta_service_tool import MetaServiceTool
from llama_agents.tools.replies import ReplyInbox
from llama_agents.tools.service_tool import ServiceInput, ServiceTool

__all__ = ["MetaServiceTool", "ReplyInbox", "ServiceInput", "ServiceTool"]
