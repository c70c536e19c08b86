"""The secret-fact tool, served by a ToolService so agents anywhere can call it."""

from llama_index.core.tools import FunctionTool

from llama_agents import RabbitMQMessageQueue
from llama_agents.services.tool import ToolService

TOOL_SERVICE_NAME = "secret_fact_tool_service"


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


secret_fact_tool = FunctionTool.from_defaults(fn=get_the_secret_fact)


def build_service() -> ToolService:
    return ToolService(
        tools=[secret_fact_tool],
        message_queue=RabbitMQMessageQueue(),
        description="Runs the secret-fact tool.",
        service_name=TOOL_SERVICE_NAME,
    )
