"""The secret-fact agent: its tool runs in the secret-fact tool service."""

from llama_index.core.agent.workflow import FunctionAgent
from secret_fact_tools import TOOL_SERVICE_NAME, secret_fact_tool

from llama_agents import AgentService, RabbitMQMessageQueue
from llama_agents.llms import default_llm
from llama_agents.tools import MetaServiceTool


def build_service() -> AgentService:
    message_queue = RabbitMQMessageQueue()
    remote_tool = MetaServiceTool(
        tool_metadata=secret_fact_tool.metadata,
        message_queue=message_queue,
        tool_service_name=TOOL_SERVICE_NAME,
    )
    return AgentService(
        agent=FunctionAgent(tools=[remote_tool], llm=default_llm()),
        message_queue=message_queue,
        description="Useful for getting the secret fact.",
        service_name="secret_fact_agent",
    )
