"""Consumers: what a message queue delivers messages to."""

from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.callable import CallableMessageConsumer
from llama_agents.message_consumers.remote import (
    RemoteMessageConsumer,
    RemoteMessageConsumerDef,
)

__all__ = [
    "BaseMessageQueueConsumer",
    "CallableMessageConsumer",
    "RemoteMessageConsumer",
    "RemoteMessageConsumerDef",
    "StartConsumingCallable",
]
