"""Message queues: the interface, the embedded queue and RabbitMQ."""

from llama_agents.message_queues.base import HUMAN_MESSAGE_TYPE, BaseMessageQueue
from llama_agents.message_queues.delivery import DeadLetter, DeliveryPolicy
from llama_agents.message_queues.rabbitmq import QueueType, RabbitMQMessageQueue
from llama_agents.message_queues.simple import SimpleMessageQueue, SimpleRemoteClientMessageQueue

__all__ = [
    "HUMAN_MESSAGE_TYPE",
    "BaseMessageQueue",
    "DeadLetter",
    "DeliveryPolicy",
    "QueueType",
    "RabbitMQMessageQueue",
    "SimpleMessageQueue",
    "SimpleRemoteClientMessageQueue",
]
