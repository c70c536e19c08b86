"""The dumb-fact agent: no tools, just its LLM."""

from llama_index.core.agent.workflow import FunctionAgent

from llama_agents import AgentService, RabbitMQMessageQueue
from llama_agents.llms import default_llm


def build_service() -> AgentService:
    return AgentService(
        agent=FunctionAgent(tools=[], llm=default_llm()),
        message_queue=RabbitMQMessageQueue(),
        description="Useful for getting random dumb facts.",
        service_name="dumb_fact_agent",
    )
