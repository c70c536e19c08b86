"""Pipeline orchestrator with a human in the loop: a router picks the agent or a person.

The pipeline is one `RouterStep` with two routes: the secret-fact agent, or a
`HumanService` (a person who solves math problems). An `LLMSelector` lets the LLM pick the
route for each task; the chosen service's answer is the result.

Run it:

    .venv/bin/python examples/pipeline_human_local_single.py

Run from a terminal, it asks you on the console. Without a terminal (a pipe, a test, CI)
it does not wait for anyone: the person answers with a canned reply instead. With no API
key the offline LLM picks the route whose description shares words with the question; set
OPENAI_API_KEY (or LLAMA_AGENTS_LLM_BASE_URL) to use a real model.
"""

import asyncio
import sys

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentService,
    ControlPlaneServer,
    HumanService,
    LLMSelector,
    LocalLauncher,
    Pipeline,
    PipelineOrchestrator,
    Route,
    RouterStep,
    ServiceComponent,
    SimpleMessageQueue,
)
from llama_agents.llms import default_llm


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


async def ask_a_person(prompt: str) -> str:
    """Ask on the console when there is one; otherwise answer for the person."""
    if sys.stdin.isatty():
        return await asyncio.to_thread(input, prompt)
    return "10 (a canned reply from the human route: there was no terminal to ask on)"


message_queue = SimpleMessageQueue()
agent_server = AgentService(
    agent=FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=default_llm()
    ),
    message_queue=message_queue,
    description="Useful for getting the secret fact.",
    service_name="secret_fact_agent",
)
human_service = HumanService(
    message_queue,
    description="A person who solves math problems.",
    service_name="math_human",
    fn_input=ask_a_person,
    human_input_prompt="A math problem for you: {input_str}\nYour answer: ",
)

router = RouterStep(
    {
        "secret_fact_agent": Route(
            ServiceComponent.from_service(agent_server), agent_server.description
        ),
        "math_human": Route(
            ServiceComponent.from_service(human_service), human_service.description
        ),
    },
    # The LLM picks among tools named after the routes, each carrying its description,
    # so the prompt only needs the input.
    LLMSelector(default_llm(), prompt="Which route fits this request? {input}"),
)
control_plane = ControlPlaneServer(message_queue, PipelineOrchestrator(Pipeline.sequence(router)))

launcher = LocalLauncher([agent_server, human_service], control_plane, message_queue)
result = launcher.launch_single("Please solve this math problem: what is 5 + 5?")
print(f"Result: {result}")
