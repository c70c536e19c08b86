"""Messages: the envelope and the payloads it carries.

Light on purpose: pydantic and nothing of the server side, so the SDK and the CLI can read
what the system sends without loading llama-index, FastAPI or aio-pika.
"""

from llama_agents.messages.chat import ChatMessage, MessageRole
from llama_agents.messages.envelope import (
    CONTROL_PLANE_MESSAGE_TYPE,
    HUMAN_MESSAGE_TYPE,
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
    "CONTROL_PLANE_MESSAGE_TYPE",
    "HUMAN_MESSAGE_TYPE",
    "SCHEMA_VERSION",
    "ActionTypes",
    "ChatMessage",
    "HumanResponse",
    "MessageRole",
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
