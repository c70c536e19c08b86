"""Clients of the control plane's HTTP API: `LlamaAgentsClient` (blocking) and
`AsyncLlamaAgentsClient` (asyncio), with the same methods and the same typed errors."""

from llama_agents.sdk._async import AsyncLlamaAgentsClient
from llama_agents.sdk._async_streams import AsyncEventStream, AsyncTaskEventStream
from llama_agents.sdk._dead_letters import DeadLetterInfo, DeadLetterPage, ReplayReport
from llama_agents.sdk._errors import ControlPlaneResponseError
from llama_agents.sdk._sessions import AsyncSession, Session
from llama_agents.sdk._sync import LlamaAgentsClient
from llama_agents.sdk._sync_streams import EventStream, TaskEventStream

__all__ = [
    "AsyncEventStream",
    "AsyncLlamaAgentsClient",
    "AsyncSession",
    "AsyncTaskEventStream",
    "ControlPlaneResponseError",
    "DeadLetterInfo",
    "DeadLetterPage",
    "EventStream",
    "LlamaAgentsClient",
    "ReplayReport",
    "Session",
    "TaskEventStream",
]
