"""The control plane: tasks, services, orchestration, and its HTTP API."""

from llama_agents.control_plane.models import TaskRecord, TaskStatus, TaskSummary
from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.control_plane.sqlite_store import SqliteKVStore
from llama_agents.message_queues.base import CONTROL_PLANE_MESSAGE_TYPE

__all__ = [
    "CONTROL_PLANE_MESSAGE_TYPE",
    "ControlPlaneServer",
    "SqliteKVStore",
    "TaskRecord",
    "TaskStatus",
    "TaskSummary",
]
