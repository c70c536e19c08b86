"""The demo behind `llama-agents demo`: the README's "Getting Started" system.

A secret-fact agent with its tool, a dumb-fact agent and an `AgentOrchestrator`, asked
"What is the secret fact?". It runs on RabbitMQ when a broker answers (`LLAMA_AGENTS_AMQP_URL`,
else the local one) and on the embedded queue otherwise; with `OPENAI_API_KEY` (or an
OpenAI-compatible `LLAMA_AGENTS_LLM_BASE_URL`) it uses that model, else the offline LLM.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.llms.llm import LLM
from llama_index.core.tools import FunctionTool

from llama_agents._settings import DEFAULT_AMQP_URL, env_str
from llama_agents.control_plane import ControlPlaneServer
from llama_agents.errors import BrokerUnavailableError, TaskFailedError
from llama_agents.launchers import LocalLauncher
from llama_agents.llms.factory import BASE_URL_ENV_VARS, describe_llm
from llama_agents.message_queues import BaseMessageQueue, RabbitMQMessageQueue, SimpleMessageQueue
from llama_agents.message_queues.rabbitmq.connection import redact
from llama_agents.messages import HUMAN_MESSAGE_TYPE
from llama_agents.orchestrators import AgentOrchestrator
from llama_agents.services import AgentService

DEMO_QUESTION = "What is the secret fact?"


@dataclass
class DemoBroker:
    """The queue the demo runs on, and a human-readable name for it. `private`: an exchange
    of the demo's own, whose queues (its answer left in `human` included) go when it ends."""

    queue: BaseMessageQueue
    description: str
    private: bool = False


async def pick_broker(
    url: str | None = None, exchange: str | None = None, *, prefer: str = "auto"
) -> DemoBroker:
    """RabbitMQ if one answers (or if asked for), else the embedded queue."""
    url = url or env_str("AMQP_URL", DEFAULT_AMQP_URL)
    if prefer in ("auto", "rabbitmq"):
        rabbit = RabbitMQMessageQueue(
            url=url,
            exchange_name=exchange or f"llama_agents_demo_{uuid.uuid4().hex[:8]}",
            connect_timeout=3.0,
        )
        try:
            await rabbit.connect()
        except BrokerUnavailableError:
            if prefer == "rabbitmq":
                raise
        else:
            return DemoBroker(rabbit, f"RabbitMQ at {rabbit!r}", private=exchange is None)
    reason = "as asked" if prefer == "embedded" else f"no RabbitMQ answered at {redact(url)}"
    return DemoBroker(SimpleMessageQueue(), f"the embedded SimpleMessageQueue ({reason})")


def get_the_secret_fact() -> str:
    """Returns the secret fact."""
    return "The secret fact is: A baby llama is called a 'Cria'."


def build_system(
    message_queue: BaseMessageQueue, llm: LLM
) -> tuple[list[AgentService], ControlPlaneServer]:
    """The Getting Started system: two agent services and a control plane."""
    agent_class = FunctionAgent if llm.metadata.is_function_calling_model else ReActAgent
    secret_agent = agent_class(tools=[FunctionTool.from_defaults(fn=get_the_secret_fact)], llm=llm)
    dumb_agent = agent_class(tools=[], llm=llm)
    control_plane = ControlPlaneServer(
        message_queue=message_queue, orchestrator=AgentOrchestrator(llm=llm)
    )
    services = [
        AgentService(
            agent=secret_agent,
            message_queue=message_queue,
            description="Useful for getting the secret fact.",
            service_name="secret_fact_agent",
        ),
        AgentService(
            agent=dumb_agent,
            message_queue=message_queue,
            description="Useful for getting random dumb facts.",
            service_name="dumb_fact_agent",
        ),
    ]
    return services, control_plane


async def run_demo(
    broker: DemoBroker, llm: LLM, question: str = DEMO_QUESTION, timeout: float = 120.0
) -> str:
    """Ask the Getting Started system `question`; return its answer.

    A failure names the LLM the demo used, and how to run it without one.
    """
    services, control_plane = build_system(broker.queue, llm)
    launcher = LocalLauncher(services, control_plane, broker.queue)
    try:
        return await launcher.alaunch_single(question, timeout=timeout)
    except TaskFailedError as exc:
        if getattr(llm, "is_offline", False):
            raise
        raise TaskFailedError(
            f"{exc.error} (the demo used the {describe_llm(llm)}; unset "
            f"{BASE_URL_ENV_VARS[0]} and OPENAI_API_KEY to run it with the offline LLM)",
            exc.task_id,
        ) from exc
    finally:
        if broker.private and isinstance(broker.queue, RabbitMQMessageQueue):
            await _discard_exchange(broker.queue)
        await broker.queue.close()


async def _discard_exchange(queue: RabbitMQMessageQueue) -> None:
    """Delete what is left on the demo's own exchange: the launcher keeps queues that hold
    messages, and `human` holds the answer the demo already printed."""
    import aio_pika

    from llama_agents.message_queues.rabbitmq.topology import dead_letter_queue_name, queue_name

    names = [queue_name(queue.exchange_name, HUMAN_MESSAGE_TYPE)]
    names.append(dead_letter_queue_name(queue.exchange_name))
    try:
        connection = await aio_pika.connect(queue.addresses[0], timeout=5)
    except Exception:  # tidying is best effort; the answer is already out
        return
    async with connection:
        for name in names:
            channel = await connection.channel()  # a missing queue closes its channel
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(queue.exchange_name)
