"""Services: long-running workers on the message fabric."""

from llama_agents.services.agent import AgentService
from llama_agents.services.base import BaseService
from llama_agents.services.component import ComponentService

__all__ = ["AgentService", "BaseService", "ComponentService"]
