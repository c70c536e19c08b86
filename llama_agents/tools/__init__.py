"""Tools that stand for services."""

from llama_agents.tools.service_tool import ServiceInput, ServiceTool

__all__ = ["ServiceInput", "ServiceTool"]
