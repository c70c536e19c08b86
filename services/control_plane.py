"""The control plane's orchestrator: an LLM routes each task to the right agent."""

from llama_agents import AgentOrchestrator
from llama_agents.llms import default_llm


def build_orchestrator() -> AgentOrchestrator:
    return AgentOrchestrator(llm=default_llm())
