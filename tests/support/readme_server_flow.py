"""The README's "Getting Started" components and "Server Flow", as written.

Only the agent constructors differ (llama-index 0.14), the LLM points at the tests' scripted
server (`SCRIPTED_LLM_URL`), and the ports start at `README_PORT_BASE` (8000 in the README)
so a busy port on the test machine cannot break the run. Run by tests/test_readme_flows.py.
"""

import logging
import os

from llama_index.core.agent.workflow import ReActAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI as _OpenAI

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    CallableMessageConsumer,
    ControlPlaneServer,
    ServerLauncher,
    SimpleMessageQueue,
)

logging.basicConfig(level=logging.INFO)
BASE = int(os.environ.get("README_PORT_BASE", "8000"))


def OpenAI(**kwargs):
    return _OpenAI(
        api_base=os.environ["SCRIPTED_LLM_URL"],
        api_key="sk-test",
        max_retries=0,
        **{"model": "gpt-4o-mini", **kwargs},
    )


# create an agent
def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


tool = FunctionTool.from_defaults(fn=get_the_secret_fact)

agent1 = ReActAgent(tools=[tool], llm=OpenAI())
agent2 = ReActAgent(tools=[], llm=OpenAI())

# create our multi-agent framework components
message_queue = SimpleMessageQueue(port=BASE)
control_plane = ControlPlaneServer(
    message_queue=message_queue,
    orchestrator=AgentOrchestrator(llm=OpenAI(model="gpt-4-turbo")),
    port=BASE + 1,
)
agent_server_1 = AgentService(
    agent=agent1,
    message_queue=message_queue,
    description="Useful for getting the secret fact.",
    service_name="secret_fact_agent",
    port=BASE + 2,
)
agent_server_2 = AgentService(
    agent=agent2,
    message_queue=message_queue,
    description="Useful for getting random dumb facts.",
    service_name="dumb_fact_agent",
    port=BASE + 3,
)

from llama_agents import CallableMessageConsumer, ServerLauncher  # noqa: E402, F811


# Additional human consumer
def handle_result(message) -> None:
    print(f"Got result:", message.data, flush=True)  # noqa: F541


human_consumer = CallableMessageConsumer(handler=handle_result, message_type="human")

# Define Launcher
launcher = ServerLauncher(
    [agent_server_1, agent_server_2],
    control_plane,
    message_queue,
    additional_consumers=[human_consumer],
)

# Launch it!
launcher.launch_servers()
