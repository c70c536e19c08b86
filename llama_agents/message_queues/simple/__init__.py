"""The embedded message queue, its HTTP server and its HTTP client."""

from llama_agents.message_queues.simple.client import SimpleRemoteClientMessageQueue
from llama_agents.message_queues.simple.served import SimpleMessageQueue

__all__ = ["SimpleMessageQueue", "SimpleRemoteClientMessageQueue"]
