"""Clients of the control plane's HTTP API: `LlamaAgentsClient` (blocking) and
`AsyncLlamaAgentsClient` (asyncio), with the same methods and the same typed errors."""

from llama_agents.sdk._async import AsyncEventStream, AsyncLlamaAgentsClient
from llama_agents.sdk._errors import ControlPlaneResponseError
from llama_agents.sdk._sync import EventStream, LlamaAgentsClient

__all__ = [
    "AsyncEventStream",
    "AsyncLlamaAgentsClient",
    "ControlPlaneResponseError",
    "EventStream",
    "LlamaAgentsClient",
]
