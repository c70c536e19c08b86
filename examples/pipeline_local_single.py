"""Pipeline orchestrator with the LocalLauncher: an explicit flow instead of an LLM router.

The `PipelineOrchestrator` sends every task through the same three steps:

1. the secret-fact agent (an `AgentService`) answers the question;
2. a `FunctionStep`, run inside the orchestrator, keeps only the fact itself;
3. an announcer (a `ComponentService` serving a plain function) dresses it up.

Run it:

    .venv/bin/python examples/pipeline_local_single.py

With no API key the agent uses the offline LLM (it matches tool descriptions and answers
with the tool's output). Set OPENAI_API_KEY, or LLAMA_AGENTS_LLM_BASE_URL and
LLAMA_AGENTS_LLM_MODEL, to use a real model.
"""

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentService,
    ComponentService,
    ControlPlaneServer,
    FunctionStep,
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


def keep_the_fact(answer: str) -> str:
    """'The secret fact is: X' -> 'X'."""
    return answer.split(": ", 1)[-1].strip()


def announce(fact: str) -> str:
    return f"Did you know? {fact}"


message_queue = SimpleMessageQueue()
agent_server = AgentService(
    agent=FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=default_llm()
    ),
    message_queue=message_queue,
    description="Useful for getting the secret fact.",
    service_name="secret_fact_agent",
)
announcer = ComponentService(
    announce, message_queue, description="Announces a fact.", service_name="announcer"
)

pipeline = Pipeline.sequence(
    ServiceComponent.from_service(agent_server),
    FunctionStep(keep_the_fact),
    ServiceComponent.from_service(announcer),
)
control_plane = ControlPlaneServer(message_queue, PipelineOrchestrator(pipeline))

launcher = LocalLauncher([agent_server, announcer], control_plane, message_queue)
result = launcher.launch_single("What is the secret fact?")
print(f"Result: {result}")
