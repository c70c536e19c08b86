"""Services: long-running workers on the message fabric.

This package is where a service meets its HTTP face: `base.py` serves whatever
`BaseService.app_factory` builds, `app.py` builds the face from what a service offers, and
neither imports the other. Python runs this file before any module of the package can be
used, so every service has its app factory by the time one is constructed.
"""

from llama_agents.services.agent import AgentService
from llama_agents.services.app import create_service_app
from llama_agents.services.base import BaseService
from llama_agents.services.component import ComponentService
from llama_agents.services.human import HumanService
from llama_agents.services.tool import ToolService
from llama_agents.services.workflow import WorkflowService

BaseService.app_factory = create_service_app

__all__ = [
    "AgentService",
    "BaseService",
    "ComponentService",
    "HumanService",
    "ToolService",
    "WorkflowService",
]
