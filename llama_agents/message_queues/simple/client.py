"""A queue object for another process, talking to a served `SimpleMessageQueue` over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from llama_agents._auth import auth_headers, configured_api_key
from llama_agents.errors import (
    BrokerUnavailableError,
    ConfigurationTypeError,
    ConsumerNotFoundError,
    DeadLetterTimeoutError,
    MessageQueueError,
    UnroutableMessageError,
)
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.remote import RemoteMessageConsumer
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.messages import QueueMessage, validate_routing_key


class SimpleRemoteClientMessageQueue(BaseMessageQueue):
    """The same interface as `SimpleMessageQueue`, over HTTP to its server.

    The server pushes messages to consumers by POSTing them, so only a
    `RemoteMessageConsumer` (a URL) can be registered from here; it starts receiving at
    registration, and its start-consuming callable returns at once. Every request carries
    the system's API key (`api_key`, else `LLAMA_AGENTS_API_KEY`), which the server asks for.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = auth_headers(configured_api_key(api_key))
        self._client = client
        self._owns_client = client is None
        self._registered: dict[str, RemoteMessageConsumer] = {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        return self._client

    async def _request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._http().request(
                method, path, headers={**self._headers, **(headers or {})}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise BrokerUnavailableError(
                f"cannot reach the message queue at {self.base_url}: {exc}"
            ) from exc
        if response.status_code == 401:
            raise MessageQueueError(
                f"the message queue at {self.base_url} refused the API key "
                f"({'none was sent' if not self._headers else 'a wrong one was sent'}); "
                "set LLAMA_AGENTS_API_KEY to the system's key"
            )
        return response

    async def _publish(self, message: QueueMessage, **kwargs: Any) -> None:
        await self.publish_raw(message.encode(), message.type)

    async def publish_raw(
        self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None
    ) -> None:
        response = await self._request(
            "POST", "/publish", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code == 404:
            raise UnroutableMessageError(routing_key)
        _raise_for_status(response)

    async def declare_queue(self, message_type: str) -> None:
        validate_routing_key(message_type)
        _raise_for_status(await self._request("POST", f"/queues/{message_type}"))

    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable:
        if not isinstance(consumer, RemoteMessageConsumer):
            raise ConfigurationTypeError(
                "a SimpleMessageQueue client can only register a RemoteMessageConsumer: the "
                "server delivers by POSTing to a URL. Serve the handler over HTTP, or use "
                f"the queue in-process; got {type(consumer).__name__}"
            )
        response = await self._request(
            "POST", "/register_consumer", json=consumer.definition().model_dump()
        )
        _raise_for_status(response)
        self._registered[consumer.id_] = consumer

        async def start_consuming() -> None:
            return None

        return start_consuming

    async def deregister_consumer(self, consumer: BaseMessageQueueConsumer) -> None:
        remote = self._registered.pop(consumer.id_, None)
        if remote is None:
            raise ConsumerNotFoundError(f"consumer {consumer.id_} is not registered here")
        response = await self._request(
            "POST", "/deregister_consumer", json=remote.definition().model_dump()
        )
        if response.status_code == 404:
            raise ConsumerNotFoundError(response.json().get("detail", "consumer not found"))
        _raise_for_status(response)

    async def list_consumers(self) -> list[dict[str, Any]]:
        """The consumers the server knows, of every type."""
        response = await self._request("GET", "/consumers")
        _raise_for_status(response)
        result: list[dict[str, Any]] = response.json()
        return result

    async def fetch_dead_letters(
        self,
        limit: int | None = None,
        *,
        remove: bool = True,
        wait_for: int = 0,
        timeout: float = 10.0,
    ) -> list[DeadLetter]:
        params: dict[str, Any] = {"wait_for": wait_for, "timeout": timeout}
        if limit is not None:
            params["limit"] = limit
        # Reading is a GET and never removes; taking is a POST.
        method, path = ("POST", "/dead_letters/take") if remove else ("GET", "/dead_letters")
        response = await self._request(method, path, params=params, timeout=timeout + self.timeout)
        if response.status_code == 408:
            raise DeadLetterTimeoutError(response.json().get("detail", "timed out"))
        _raise_for_status(response)
        return [DeadLetter.model_validate(item) for item in response.json()]

    async def launch_local(self) -> asyncio.Task[None]:
        raise MessageQueueError(
            "a SimpleMessageQueue client has no local queue to launch; launch the "
            "SimpleMessageQueue itself (launch_server) in the process that owns it"
        )

    async def launch_server(self) -> None:
        raise MessageQueueError(
            "a SimpleMessageQueue client cannot serve; call launch_server on the "
            "SimpleMessageQueue it points to"
        )

    async def cleanup(self) -> None:
        for consumer in list(self._registered.values()):
            await self.deregister_consumer(consumer)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise MessageQueueError(f"message queue answered {response.status_code}: {detail}")
