"""Messages: the envelope and the payloads it carries."""

from llama_agents.messages.envelope import (
    SCHEMA_VERSION,
    ActionTypes,
    QueueMessage,
    QueueMessageStats,
    validate_routing_key,
)
from llama_agents.messages.payloads import (
    HumanResponse,
    ServiceDefinition,
    TaskDefinition,
    TaskResult,
    ToolCall,
    ToolCallBundle,
    ToolCallResult,
)

__all__ = [
    "SCHEMA_VERSION",
    "ActionTypes",
    "HumanResponse",
    "QueueMessage",
    "QueueMessageStats",
    "ServiceDefinition",
    "TaskDefinition",
    "TaskResult",
    "ToolCall",
    "ToolCallBundle",
    "ToolCallResult",
    "validate_routing_key",
]
