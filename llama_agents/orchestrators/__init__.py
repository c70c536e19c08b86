"""Orchestrators: who decides each task's next step."""

from llama_agents.orchestrators.agent import AgentOrchestrator
from llama_agents.orchestrators.base import BaseOrchestrator, final_message, step_message
from llama_agents.orchestrators.pipeline import LLMSelector, PipelineOrchestrator
from llama_agents.orchestrators.pipeline_graph import (
    FunctionStep,
    Pipeline,
    Route,
    RouterStep,
    ServiceStep,
)

__all__ = [
    "AgentOrchestrator",
    "BaseOrchestrator",
    "FunctionStep",
    "LLMSelector",
    "Pipeline",
    "PipelineOrchestrator",
    "Route",
    "RouterStep",
    "ServiceStep",
    "final_message",
    "step_message",
]
