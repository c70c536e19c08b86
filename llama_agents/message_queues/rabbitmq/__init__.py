"""The RabbitMQ message queue."""

from llama_agents.message_queues.rabbitmq.queue import RabbitMQMessageQueue
from llama_agents.message_queues.rabbitmq.topology import QueueType

__all__ = ["QueueType", "RabbitMQMessageQueue"]
