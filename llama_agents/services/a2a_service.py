"""`A2AService`: a remote A2A agent served as a service of the mesh.

Each step sent to it is one conversation with the remote agent, run by `WorkflowService`'s
machinery (`a2a_workflow.A2AExchange`): the remote's streamed updates become the task's events
(`GET /tasks/{id}/events`), its `input-required` our `waiting_for_input` with its question, and
the answer a person sends (`POST /tasks/{id}/events` with a `HumanResponseEvent`) goes back to
it as the next message in its task. Its final artifact (or message) text is the step's result;
a remote failure is a failed step with the remote's words. An orchestrator sees it as any
service, described by the remote's card.

Needs the a2a SDK: `pip install 'llama-agents[a2a]'`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.llms import ChatMessage

from llama_agents._auth import auth_headers
from llama_agents._retry import with_backoff
from llama_agents._settings import env_float
from llama_agents.errors import ConfigurationError, StartupError
from llama_agents.message_consumers.base import StartConsumingCallable
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.services.workflow import WorkflowService

if TYPE_CHECKING:
    from a2a.types import AgentCard

INSTALL_HINT = "pip install 'llama-agents[a2a]'"


def _require_sdk() -> None:
    try:
        import a2a.client  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"A2AService needs the official a2a SDK ({exc}): {INSTALL_HINT}"
        ) from None


class A2AService(WorkflowService):
    """Serves the A2A agent at `agent_card_url` as the service `service_name`.

    Args:
        agent_card_url: the remote agent's base URL (its card is read from
            `/.well-known/agent-card.json`), or its card's own URL (ending in `.json`).
        message_queue: the fabric.
        service_name: its name (and queue) on the mesh.
        description: what it is good for (an orchestrating LLM reads it); default: the
            description on the remote's card, read when the service registers.
        api_key: the remote agent's bearer token (sent as `Authorization: Bearer ...`);
            not the system's own key, which every service takes from `LLAMA_AGENTS_API_KEY`.
        headers: more headers for every request to the remote (its credentials, say).
        timeout: seconds to wait for the remote's next byte (a streamed update or a blocking
            answer); None: no limit.
        startup_timeout: seconds to wait for the remote's card when the service registers
            (it may be starting; default `LLAMA_AGENTS_STARTUP_TIMEOUT`, else 60).
        max_concurrent_runs, idle_release_s, event_coalesce_s, step_timeout, prompt, host,
            port: as for `WorkflowService` (the remote's updates that come within
            `event_coalesce_s` travel to the control plane in one message).
    """

    service_kind = "a2a"

    def __init__(
        self,
        agent_card_url: str,
        message_queue: BaseMessageQueue,
        service_name: str = "a2a_agent",
        description: str | None = None,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 300.0,
        startup_timeout: float | None = None,
        max_concurrent_runs: int = 10,
        idle_release_s: float | None = 60.0,
        event_coalesce_s: float = 0.05,
        step_timeout: float | None = None,
        prompt: list[ChatMessage] | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        _require_sdk()
        from llama_agents.services.a2a_remote import RemoteAgent
        from llama_agents.services.a2a_workflow import A2AExchange

        #: The remote agent: its card, once read, and the client runs share.
        self.remote = RemoteAgent(
            agent_card_url, headers={**auth_headers(api_key), **(headers or {})}, timeout=timeout
        )
        super().__init__(
            A2AExchange(self.remote),
            message_queue,
            service_name,
            description or f"The A2A agent at {agent_card_url}.",
            max_concurrent_runs=max_concurrent_runs,
            idle_release_s=idle_release_s,
            event_coalesce_s=event_coalesce_s,
            step_timeout=step_timeout,
            prompt=prompt,
            host=host,
            port=port,
        )
        self.agent_card_url = agent_card_url
        self.startup_timeout = startup_timeout
        self._describe_from_card = description is None

    @property
    def agent_card(self) -> AgentCard | None:
        """The remote's card, once read (`load_card`)."""
        return self.remote.loaded_card

    async def load_card(self) -> AgentCard:
        """Read the remote's card, waiting for the remote to answer (with backoff, up to
        `startup_timeout`); take its description unless one was given."""
        timeout = self.startup_timeout
        card = await with_backoff(
            self.remote.card,
            what=f"the A2A agent card at {self.agent_card_url}",
            retry_on=(StartupError,),
            timeout=timeout if timeout is not None else env_float("STARTUP_TIMEOUT", 60.0),
        )
        if self._describe_from_card and card.description:
            self.description = card.description
        return card

    async def register_to_message_queue(self) -> StartConsumingCallable:
        """Read the remote's card first (its description is what the service registers)."""
        await self.load_card()
        return await super().register_to_message_queue()

    async def deregister_from_message_queue(self) -> None:
        await super().deregister_from_message_queue()
        await self.remote.close()

    def status(self) -> dict[str, Any]:
        status = super().status()
        card = self.remote.loaded_card
        status["a2a"] = {
            "agent_card_url": self.agent_card_url,
            "agent": card.name if card is not None else None,
            "streaming": self.remote.streams,
        }
        return status
