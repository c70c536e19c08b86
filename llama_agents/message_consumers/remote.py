"""A consumer that forwards each message to an HTTP endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field, field_validator

from llama_agents._auth import auth_headers, configured_api_key
from llama_agents.errors import ConfigurationError, RemoteConsumerError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.messages import QueueMessage
from llama_agents.messages.envelope import RoutingKey


def validate_http_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; a `ConfigurationError` (a `ValueError`,
    so a request body naming such a URL is a 422) saying so otherwise.

    Messages are POSTed to it: any other scheme (file:, gopher:, ...) is refused.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"url must be an http(s) URL with a host, got {url!r}")
    return url


class RemoteMessageConsumerDef(BaseModel):
    """How a remote consumer is described over HTTP (to a served `SimpleMessageQueue`)."""

    id_: str = Field(min_length=1, max_length=200)
    message_type: RoutingKey
    url: str = Field(min_length=1, max_length=2000)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        return validate_http_url(url)


class RemoteMessageConsumer(BaseMessageQueueConsumer):
    """POSTs each message as JSON to `url`.

    Only a 2xx answer counts as handled; any other status, a timeout or a connection error
    raises `RemoteConsumerError`, so the queue retries the message instead of dropping it.
    Each POST carries the system's API key (`api_key`, else `LLAMA_AGENTS_API_KEY`), which
    every served llama-agents endpoint asks for; `headers` may add or override headers.
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
        api_key: str | None = None,
    ) -> None:
        validate_http_url(url)
        super().__init__(message_type=message_type, id_=id_, prefetch=prefetch)
        self.url = url
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self.headers = {
            "content-type": "application/json",
            **auth_headers(configured_api_key(api_key)),
            **(headers or {}),
        }

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
