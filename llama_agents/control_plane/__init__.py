"""The control plane: tasks, services, orchestration, sessions, and its HTTP API."""

from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.control_plane.state import SqliteStateStore, StateStore
from llama_agents.messages.envelope import CONTROL_PLANE_MESSAGE_TYPE
from llama_agents.messages.records import TaskEvent, TaskRecord, TaskStatus, TaskSummary

__all__ = [
    "CONTROL_PLANE_MESSAGE_TYPE",
    "ControlPlaneServer",
    "SqliteStateStore",
    "StateStore",
    "TaskEvent",
    "TaskRecord",
    "TaskStatus",
    "TaskSummary",
]
