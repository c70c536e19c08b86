"""A consumer that forwards each message to an HTTP endpoint."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field

from llama_agents.errors import ConfigurationError, RemoteConsumerError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.messages import QueueMessage
from llama_agents.messages.envelope import RoutingKey


class RemoteMessageConsumerDef(BaseModel):
    """How a remote consumer is described over HTTP (to a served `SimpleMessageQueue`)."""

    id_: str = Field(min_length=1, max_length=200)
    message_type: RoutingKey
    url: str = Field(min_length=1, max_length=2000)


class RemoteMessageConsumer(BaseMessageQueueConsumer):
    """POSTs each message as JSON to `url`.

    Only a 2xx answer counts as handled; any other status, a timeout or a connection error
    raises `RemoteConsumerError`, so the queue retries the message instead of dropping it.
    """

    def __init__(
        self,
        url: str,
        message_type: str,
        *,
        id_: str | None = None,
        timeout: float = 30.0,
        prefetch: int | None = None,
        client: httpx.AsyncClient | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must be an http(s) URL, got {url!r}")
        super().__init__(message_type=message_type, id_=id_, prefetch=prefetch)
        self.url = url
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self.headers = {"content-type": "application/json", **(headers or {})}

    def definition(self) -> RemoteMessageConsumerDef:
        """The JSON-safe description of this consumer."""
        return RemoteMessageConsumerDef(id_=self.id_, message_type=self.message_type, url=self.url)

    async def _process_message(self, message: QueueMessage, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._client.post(
                self.url,
                content=message.encode(),
                headers=self.headers,
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise RemoteConsumerError(f"{self.url} did not answer within {self.timeout}s") from exc
        except httpx.HTTPError as exc:
            raise RemoteConsumerError(f"cannot reach {self.url}: {exc}") from exc
        if not response.is_success:
            raise RemoteConsumerError(
                f"{self.url} answered {response.status_code}: {response.text[:200]}"
            )
        return None

    async def aclose(self) -> None:
        """Close the HTTP client this consumer created."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
