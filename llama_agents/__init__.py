"""llama-agents: run llama-index agents as services on a RabbitMQ mesh."""

# llama-index-workflows installs a namespace folder `llama_agents/workflows`; keep it
# importable as `llama_agents.workflows` next to this package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from llama_agents.control_plane import ControlPlaneServer, TaskRecord, TaskStatus
from llama_agents.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    ConsumerError,
    ControlPlaneError,
    LlamaAgentsError,
    MessageDecodeError,
    MessageQueueError,
    OrchestratorError,
    PublishTimeoutError,
    ServiceNotFoundError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    UnroutableMessageError,
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
)
from llama_agents.tools import (
    AgentServiceTool,
    MetaServiceTool,
    ServiceAsTool,
    ServiceComponent,
)

__version__ = "0.1.0"

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
    "BrokerUnavailableError",
    "CallableMessageConsumer",
    "ComponentService",
    "ConfigurationError",
    "ConsumerError",
    "ControlPlaneError",
    "ControlPlaneServer",
    "DeadLetter",
    "FunctionStep",
    "HumanResponse",
    "HumanService",
    "LLMSelector",
    "LlamaAgentsClient",
    "LlamaAgentsError",
    "LocalLauncher",
    "MessageDecodeError",
    "MessageQueueError",
    "MetaServiceTool",
    "OfflineLLM",
    "OrchestratorError",
    "Pipeline",
    "PipelineOrchestrator",
    "PublishTimeoutError",
    "QueueMessage",
    "QueueType",
    "RabbitMQMessageQueue",
    "RemoteMessageConsumer",
    "Route",
    "RouterStep",
    "ServerLauncher",
    "ServiceAsTool",
    "ServiceComponent",
    "ServiceDefinition",
    "ServiceNotFoundError",
    "ServiceStep",
    "SimpleMessageQueue",
    "SimpleRemoteClientMessageQueue",
    "TaskDefinition",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "ToolCall",
    "ToolCallBundle",
    "ToolCallResult",
    "ToolService",
    "UnroutableMessageError",
    "__version__",
]
