"""Services: long-running workers on the message fabric."""

from llama_agents.services.agent import AgentService
from llama_agents.services.base import BaseService
from llama_agents.services.component import ComponentService
from llama_agents.services.human import HumanService
from llama_agents.services.tool import ToolService

__all__ = ["AgentService", "BaseService", "ComponentService", "HumanService", "ToolService"]
