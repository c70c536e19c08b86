"""The control plane: tasks, services, orchestration, and its HTTP API."""

from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.control_plane.server import CONTROL_PLANE_MESSAGE_TYPE, ControlPlaneServer
from llama_agents.control_plane.sqlite_store import SqliteKVStore

__all__ = [
    "CONTROL_PLANE_MESSAGE_TYPE",
    "ControlPlaneServer",
    "SqliteKVStore",
    "TaskRecord",
    "TaskStatus",
    "TaskSummary",
]
