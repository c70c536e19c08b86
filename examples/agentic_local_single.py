"""Agentic orchestrator with the LocalLauncher: the README's "Getting Started".

Two agent services (one knows the secret fact through its tool, one knows dumb facts) and
an `AgentOrchestrator` whose LLM routes the question to the right agent. Everything runs in
this process, on the embedded queue, for one question.

Run it:

    .venv/bin/python examples/agentic_local_single.py

With no API key it uses the offline LLM (it matches tool descriptions and answers with the
tool's output). Set OPENAI_API_KEY to use OpenAI, or LLAMA_AGENTS_LLM_BASE_URL and
LLAMA_AGENTS_LLM_MODEL for an OpenAI-compatible server (vLLM, Ollama, llama.cpp server).
"""

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    LocalLauncher,
    SimpleMessageQueue,
)
from llama_agents.llms import default_llm


# create an agent
def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


tool = FunctionTool.from_defaults(fn=get_the_secret_fact)

agent1 = FunctionAgent(tools=[tool], llm=default_llm())
agent2 = FunctionAgent(tools=[], llm=default_llm())

# create our multi-agent framework components
message_queue = SimpleMessageQueue()
control_plane = ControlPlaneServer(
    message_queue=message_queue,
    orchestrator=AgentOrchestrator(llm=default_llm()),
)
agent_server_1 = AgentService(
    agent=agent1,
    message_queue=message_queue,
    description="Useful for getting the secret fact.",
    service_name="secret_fact_agent",
)
agent_server_2 = AgentService(
    agent=agent2,
    message_queue=message_queue,
    description="Useful for getting random dumb facts.",
    service_name="dumb_fact_agent",
)

# launch it
launcher = LocalLauncher([agent_server_1, agent_server_2], control_plane, message_queue)
result = launcher.launch_single("What is the secret fact?")

print(f"Result: {result}")
