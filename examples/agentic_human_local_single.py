"""Agentic orchestrator with a human in the loop, run once with the LocalLauncher.

Next to the secret-fact agent there is a `HumanService`: a person who solves math
problems. The orchestrator's LLM routes the math question to the person, whose answer
becomes the task's result.

Run it:

    .venv/bin/python examples/agentic_human_local_single.py

Run from a terminal, it asks you on the console. Without a terminal (a pipe, a test, CI)
it does not wait for anyone: the person answers with a canned reply instead. With no API
key the offline LLM routes the question by matching it against the service descriptions;
set OPENAI_API_KEY (or LLAMA_AGENTS_LLM_BASE_URL) to use a real model.
"""

import asyncio
import sys

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_agents import (
    AgentOrchestrator,
    AgentService,
    ControlPlaneServer,
    HumanService,
    LocalLauncher,
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
    return "10 (a canned reply: there was no terminal to ask on)"


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
control_plane = ControlPlaneServer(message_queue, AgentOrchestrator(llm=default_llm()))

launcher = LocalLauncher([agent_server, human_service], control_plane, message_queue)
result = launcher.launch_single("Please solve this math problem: what is 5 + 5?")
print(f"Result: {result}")
