"""Pipeline orchestrator with an agent service used as a tool by another agent.

The secret-fact agent runs as a service. A second agent gets it as a tool
(`AgentServiceTool`, also called `ServiceAsTool`): calling that tool sends a task to the
secret-fact agent over the message queue and waits for its answer. The pipeline has one
step, the calling agent; the secret-fact agent is reached only through the tool.

Run it:

    .venv/bin/python examples/pipeline_agent_service_tool_local_single.py

With no API key it uses the offline LLM (it matches tool descriptions and answers with the
tool's output). Set OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and LLAMA_AGENTS_LLM_MODEL,
to use a real model.
"""

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentService,
    AgentServiceTool,
    ControlPlaneServer,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    ServiceComponent,
    SimpleMessageQueue,
)
from llama_agents.llms import default_llm


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


message_queue = SimpleMessageQueue()
agent_server_1 = AgentService(
    agent=FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=default_llm()
    ),
    message_queue=message_queue,
    description="Useful for getting the secret fact.",
    service_name="secret_fact_agent",
)

# the first agent service, as a tool of the second agent
agent1_server_tool = AgentServiceTool.from_service_definition(
    message_queue, agent_server_1.service_definition
)
agent_server_2 = AgentService(
    agent=FunctionAgent(tools=[agent1_server_tool], llm=default_llm()),
    message_queue=message_queue,
    description="Useful for getting random dumb facts.",
    service_name="dumb_fact_agent",
)

pipeline = Pipeline.sequence(ServiceComponent.from_service(agent_server_2))
control_plane = ControlPlaneServer(message_queue, PipelineOrchestrator(pipeline))

launcher = LocalLauncher([agent_server_1, agent_server_2], control_plane, message_queue)
result = launcher.launch_single("What is the secret fact?")
print(f"Result: {result}")
