"""A remote A2A agent as the official SDK reaches it: its card, a client for it, cancels.

One `RemoteAgent` per `A2AService`: its HTTP client (carrying the remote's credentials) and its
A2A client are made once, on first use, and shared by every run. The card is read once; the
client it makes speaks the remote's transport and protocol version (1.0, or 0.3 through the
SDK's adapter), streaming when the card says the remote streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from a2a.client import (
    A2ACardResolver,
    AgentCardResolutionError,
    Client,
    ClientConfig,
    ClientFactory,
)
from a2a.types import AgentCard, CancelTaskRequest

from llama_agents.errors import ConfigurationError, StartupError

logger = logging.getLogger("llama_agents.services.a2a")

#: Seconds to connect to the remote agent, and the longest a best-effort cancel may take.
CONNECT_TIMEOUT = 10.0


class RemoteAgent:
    """The remote agent behind `agent_card_url` (its base URL, or its card's own URL).

    Args:
        agent_card_url: `https://host` (the card is read from
            `/.well-known/agent-card.json`) or the URL of a card (ending in `.json`).
        headers: sent with every request (the remote's credentials).
        timeout: seconds to wait for the remote's next byte (a streamed update, or a
            blocking answer); None: no limit.
    """

    def __init__(
        self,
        agent_card_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 300.0,
    ) -> None:
        self.agent_card_url = agent_card_url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._card: AgentCard | None = None
        self._client: Client | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def loaded_card(self) -> AgentCard | None:
        """The card, once read."""
        return self._card

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(
                headers=self.headers,
                timeout=httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT),
            )
            self._client = None
        return self._http

    async def card(self) -> AgentCard:
        """The remote's card (read once). Raises `StartupError` when the remote does not
        answer (or answers 5xx: it may be starting), `ConfigurationError` when it refuses
        (a wrong URL or key)."""
        if self._card is not None:
            return self._card
        url = self.agent_card_url.rstrip("/")
        if url.endswith(".json"):
            resolver = A2ACardResolver(self._http_client(), url, agent_card_path="")
        else:
            resolver = A2ACardResolver(self._http_client(), url)
        try:
            self._card = await resolver.get_agent_card()
        except AgentCardResolutionError as exc:
            status = exc.status_code
            if status is None or status >= 500:
                raise StartupError(
                    f"no A2A agent card at {self.agent_card_url}: {exc.message}"
                ) from exc
            raise ConfigurationError(
                f"the A2A agent at {self.agent_card_url} refused its card ({status}): {exc.message}"
            ) from exc
        return self._card

    @property
    def streams(self) -> bool:
        """Whether the remote streams (its card says so): else each message blocks."""
        return self._card is not None and self._card.capabilities.streaming

    async def client(self) -> Client:
        """The A2A client for the remote (made once, from its card)."""
        card = await self.card()
        http = self._http_client()
        if self._client is None:
            self._client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(
                card
            )
        return self._client

    def cancel_soon(self, task_id: str) -> None:
        """Ask the remote to cancel its task, in the background (our run is being cancelled:
        it must not wait on the remote). Best effort: a failure is logged."""
        task = asyncio.ensure_future(self._cancel(task_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel(self, task_id: str) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await (await self.client()).cancel_task(CancelTaskRequest(id=task_id))
        except Exception as exc:
            logger.info("could not cancel task %s at %s: %s", task_id, self.agent_card_url, exc)

    async def close(self) -> None:
        """Close the HTTP client (after pending cancels); a later use opens a new one."""
        if self._background:
            await asyncio.wait(self._background, timeout=CONNECT_TIMEOUT)
        if self._http is not None:
            await self._http.aclose()
        self._http = None
        self._client = None
