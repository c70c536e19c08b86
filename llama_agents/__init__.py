"""llama-agents: run llama-index agents as services on a RabbitMQ mesh.

The names below are imported on first use (PEP 562), not with the package: `import
llama_agents` stays cheap, and a script that only talks to a control plane (the SDK, the
CLI) never loads the server side (FastAPI, uvicorn, aio-pika, llama-index).
"""

# llama-index-workflows installs a namespace folder `llama_agents/workflows`; keep it
# importable as `llama_agents.workflows` next to this package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:  # what type checkers and IDEs see; at run time, `__getattr__` below
    from llama_agents.control_plane import ControlPlaneServer
    from llama_agents.errors import (
        BrokerAuthenticationError,
        BrokerUnavailableError,
        ConcurrentUpdateError,
        ConfigurationError,
        ConfigurationTypeError,
        ConsoleClosedError,
        ConsumerError,
        ConsumerNotFoundError,
        ControlPlaneError,
        ControlPlaneResponseError,
        ControlPlaneUnavailableError,
        DeadLetterTimeoutError,
        EventRejectedError,
        HumanRequestNotFoundError,
        HumanServiceError,
        LifecycleError,
        LlamaAgentsError,
        LLMResponseError,
        MessageDecodeError,
        MessageQueueError,
        NonRetryableMessageError,
        NotStartedError,
        OrchestratorError,
        PublishRejectedError,
        PublishTimeoutError,
        RemoteConsumerError,
        RequestTooLargeError,
        ServiceNotFoundError,
        SessionExistsError,
        SessionNotFoundError,
        StartupError,
        TaskExistsError,
        TaskFailedError,
        TaskFinishedError,
        TaskNotFoundError,
        TaskTimeoutError,
        ToolCallTimeoutError,
        UnauthorizedError,
        UnknownEventTypeError,
        UnknownResultKeyError,
        UnroutableMessageError,
        WorkflowError,
        WorkflowInputError,
    )
    from llama_agents.launchers import LocalLauncher, ServerLauncher
    from llama_agents.llms import OfflineLLM
    from llama_agents.message_consumers import (
        BaseMessageQueueConsumer,
        CallableMessageConsumer,
        RemoteMessageConsumer,
    )
    from llama_agents.message_queues import (
        BaseMessageQueue,
        DeadLetter,
        QueueType,
        RabbitMQMessageQueue,
        SimpleMessageQueue,
        SimpleRemoteClientMessageQueue,
    )
    from llama_agents.messages import (
        ActionTypes,
        HumanResponse,
        QueueMessage,
        ServiceDefinition,
        TaskDefinition,
        TaskResult,
        ToolCall,
        ToolCallBundle,
        ToolCallResult,
    )
    from llama_agents.messages.records import TaskRecord, TaskStatus
    from llama_agents.orchestrators import (
        AgentOrchestrator,
        BaseOrchestrator,
        FunctionStep,
        LLMSelector,
        Pipeline,
        PipelineOrchestrator,
        Route,
        RouterStep,
        ServiceStep,
    )
    from llama_agents.sdk import AsyncLlamaAgentsClient, LlamaAgentsClient
    from llama_agents.services import (
        AgentService,
        BaseService,
        ComponentService,
        HumanService,
        ToolService,
        WorkflowService,
    )
    from llama_agents.tools import (
        AgentServiceTool,
        MetaServiceTool,
        ServiceAsTool,
        ServiceComponent,
    )

__version__ = "0.1.0"

#: Each public name, and the module it is imported from on first use.
_EXPORTS: dict[str, str] = {
    "ActionTypes": "llama_agents.messages",
    "AgentOrchestrator": "llama_agents.orchestrators",
    "AgentService": "llama_agents.services",
    "AgentServiceTool": "llama_agents.tools",
    "AsyncLlamaAgentsClient": "llama_agents.sdk",
    "BaseMessageQueue": "llama_agents.message_queues",
    "BaseMessageQueueConsumer": "llama_agents.message_consumers",
    "BaseOrchestrator": "llama_agents.orchestrators",
    "BaseService": "llama_agents.services",
    "BrokerAuthenticationError": "llama_agents.errors",
    "BrokerUnavailableError": "llama_agents.errors",
    "CallableMessageConsumer": "llama_agents.message_consumers",
    "ComponentService": "llama_agents.services",
    "ConcurrentUpdateError": "llama_agents.errors",
    "ConfigurationError": "llama_agents.errors",
    "ConfigurationTypeError": "llama_agents.errors",
    "ConsoleClosedError": "llama_agents.errors",
    "ConsumerError": "llama_agents.errors",
    "ConsumerNotFoundError": "llama_agents.errors",
    "ControlPlaneError": "llama_agents.errors",
    "ControlPlaneResponseError": "llama_agents.errors",
    "ControlPlaneServer": "llama_agents.control_plane",
    "ControlPlaneUnavailableError": "llama_agents.errors",
    "DeadLetter": "llama_agents.message_queues",
    "DeadLetterTimeoutError": "llama_agents.errors",
    "EventRejectedError": "llama_agents.errors",
    "FunctionStep": "llama_agents.orchestrators",
    "HumanRequestNotFoundError": "llama_agents.errors",
    "HumanResponse": "llama_agents.messages",
    "HumanService": "llama_agents.services",
    "HumanServiceError": "llama_agents.errors",
    "LLMResponseError": "llama_agents.errors",
    "LLMSelector": "llama_agents.orchestrators",
    "LifecycleError": "llama_agents.errors",
    "LlamaAgentsClient": "llama_agents.sdk",
    "LlamaAgentsError": "llama_agents.errors",
    "LocalLauncher": "llama_agents.launchers",
    "MessageDecodeError": "llama_agents.errors",
    "MessageQueueError": "llama_agents.errors",
    "MetaServiceTool": "llama_agents.tools",
    "NonRetryableMessageError": "llama_agents.errors",
    "NotStartedError": "llama_agents.errors",
    "OfflineLLM": "llama_agents.llms",
    "OrchestratorError": "llama_agents.errors",
    "Pipeline": "llama_agents.orchestrators",
    "PipelineOrchestrator": "llama_agents.orchestrators",
    "PublishRejectedError": "llama_agents.errors",
    "PublishTimeoutError": "llama_agents.errors",
    "QueueMessage": "llama_agents.messages",
    "QueueType": "llama_agents.message_queues",
    "RabbitMQMessageQueue": "llama_agents.message_queues",
    "RemoteConsumerError": "llama_agents.errors",
    "RemoteMessageConsumer": "llama_agents.message_consumers",
    "RequestTooLargeError": "llama_agents.errors",
    "Route": "llama_agents.orchestrators",
    "RouterStep": "llama_agents.orchestrators",
    "ServerLauncher": "llama_agents.launchers",
    "ServiceAsTool": "llama_agents.tools",
    "ServiceComponent": "llama_agents.tools",
    "ServiceDefinition": "llama_agents.messages",
    "ServiceNotFoundError": "llama_agents.errors",
    "ServiceStep": "llama_agents.orchestrators",
    "SessionExistsError": "llama_agents.errors",
    "SessionNotFoundError": "llama_agents.errors",
    "SimpleMessageQueue": "llama_agents.message_queues",
    "SimpleRemoteClientMessageQueue": "llama_agents.message_queues",
    "StartupError": "llama_agents.errors",
    "TaskDefinition": "llama_agents.messages",
    "TaskExistsError": "llama_agents.errors",
    "TaskFailedError": "llama_agents.errors",
    "TaskFinishedError": "llama_agents.errors",
    "TaskNotFoundError": "llama_agents.errors",
    "TaskRecord": "llama_agents.messages.records",
    "TaskResult": "llama_agents.messages",
    "TaskStatus": "llama_agents.messages.records",
    "TaskTimeoutError": "llama_agents.errors",
    "ToolCall": "llama_agents.messages",
    "ToolCallBundle": "llama_agents.messages",
    "ToolCallResult": "llama_agents.messages",
    "ToolCallTimeoutError": "llama_agents.errors",
    "ToolService": "llama_agents.services",
    "UnauthorizedError": "llama_agents.errors",
    "UnknownEventTypeError": "llama_agents.errors",
    "UnknownResultKeyError": "llama_agents.errors",
    "UnroutableMessageError": "llama_agents.errors",
    "WorkflowError": "llama_agents.errors",
    "WorkflowInputError": "llama_agents.errors",
    "WorkflowService": "llama_agents.services",
}

__all__ = [
    "ActionTypes",
    "AgentOrchestrator",
    "AgentService",
    "AgentServiceTool",
    "AsyncLlamaAgentsClient",
    "BaseMessageQueue",
    "BaseMessageQueueConsumer",
    "BaseOrchestrator",
    "BaseService",
    "BrokerAuthenticationError",
    "BrokerUnavailableError",
    "CallableMessageConsumer",
    "ComponentService",
    "ConcurrentUpdateError",
    "ConfigurationError",
    "ConfigurationTypeError",
    "ConsoleClosedError",
    "ConsumerError",
    "ConsumerNotFoundError",
    "ControlPlaneError",
    "ControlPlaneResponseError",
    "ControlPlaneServer",
    "ControlPlaneUnavailableError",
    "DeadLetter",
    "DeadLetterTimeoutError",
    "EventRejectedError",
    "FunctionStep",
    "HumanRequestNotFoundError",
    "HumanResponse",
    "HumanService",
    "HumanServiceError",
    "LLMResponseError",
    "LLMSelector",
    "LifecycleError",
    "LlamaAgentsClient",
    "LlamaAgentsError",
    "LocalLauncher",
    "MessageDecodeError",
    "MessageQueueError",
    "MetaServiceTool",
    "NonRetryableMessageError",
    "NotStartedError",
    "OfflineLLM",
    "OrchestratorError",
    "Pipeline",
    "PipelineOrchestrator",
    "PublishRejectedError",
    "PublishTimeoutError",
    "QueueMessage",
    "QueueType",
    "RabbitMQMessageQueue",
    "RemoteConsumerError",
    "RemoteMessageConsumer",
    "RequestTooLargeError",
    "Route",
    "RouterStep",
    "ServerLauncher",
    "ServiceAsTool",
    "ServiceComponent",
    "ServiceDefinition",
    "ServiceNotFoundError",
    "ServiceStep",
    "SessionExistsError",
    "SessionNotFoundError",
    "SimpleMessageQueue",
    "SimpleRemoteClientMessageQueue",
    "StartupError",
    "TaskDefinition",
    "TaskExistsError",
    "TaskFailedError",
    "TaskFinishedError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "ToolCall",
    "ToolCallBundle",
    "ToolCallResult",
    "ToolCallTimeoutError",
    "ToolService",
    "UnauthorizedError",
    "UnknownEventTypeError",
    "UnknownResultKeyError",
    "UnroutableMessageError",
    "WorkflowError",
    "WorkflowInputError",
    "WorkflowService",
    "__version__",
]


#: Our subpackages: `llama_agents.sdk` works after a bare `import llama_agents`, as it did
#: when this module imported everything.
_SUBPACKAGES = frozenset(
    {
        "console",
        "control_plane",
        "errors",
        "launchers",
        "llms",
        "message_consumers",
        "message_queues",
        "messages",
        "orchestrators",
        "sdk",
        "services",
        "tools",
    }
)


def __getattr__(name: str) -> _Any:
    if name in _SUBPACKAGES:
        return _import_module(f"{__name__}.{name}")  # the import sets the attribute
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*(n for n in globals() if not n.startswith("_")), *__all__, *_SUBPACKAGES})
