"""LlamaIndex's workflow-server HTTP API (`llama-agents-server` 0.8) over our tasks, so the
official `WorkflowClient` drives the mesh unchanged.

Every registered workflow or agent service is a workflow, named by its service name. A handler
is a session of runs on one workflow: its first run is the task whose id is the handler id,
each later run (`handler_id` given on run) a task in the session of that id, continuing its
context. See `handlers.py` for the mapping.
"""

from llama_agents.control_plane.workflow_api.routes import (
    workflow_api_router,
    workflow_health_router,
)

__all__ = ["workflow_api_router", "workflow_health_router"]
