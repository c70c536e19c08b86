"""Orchestrators: who decides each task's next step."""

from llama_agents.orchestrators.agent import AgentOrchestrator
from llama_agents.orchestrators.base import BaseOrchestrator, final_message, step_message

__all__ = ["AgentOrchestrator", "BaseOrchestrator", "final_message", "step_message"]
