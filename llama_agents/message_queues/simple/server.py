"""The HTTP face of the embedded queue, so processes can share one queue.

It depends only on `ServableQueue`, the few methods it calls, which the core queue satisfies:
the core never imports this module. With an API key, every route but `/health` (the
OpenAPI document and its page included) asks for it: whoever can register a consumer can take
a share of any message type, and the dead letters are the system's failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from llama_agents import tracing
from llama_agents._auth import api_key_guard, configured_api_key
from llama_agents._serving import HttpServer
from llama_agents.errors import ConsumerNotFoundError, MessageDecodeError, UnroutableMessageError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer, StartConsumingCallable
from llama_agents.message_consumers.remote import RemoteMessageConsumer, RemoteMessageConsumerDef
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.messages import QueueMessage, validate_routing_key


class ServableQueue(Protocol):
    """What the HTTP face needs of a queue."""

    async def publish(self, message: QueueMessage, **kwargs: Any) -> None: ...

    async def declare_queue(self, message_type: str) -> None: ...

    async def register_consumer(
        self, consumer: BaseMessageQueueConsumer, **kwargs: Any
    ) -> StartConsumingCallable: ...

    async def deregister_consumer(self, consumer: BaseMessageQueueConsumer) -> None: ...

    def consumers(self) -> list[BaseMessageQueueConsumer]: ...

    def stats(self) -> dict[str, dict[str, int]]: ...

    async def fetch_dead_letters(
        self,
        limit: int | None = None,
        *,
        remove: bool = True,
        wait_for: int = 0,
        timeout: float = 10.0,
    ) -> list[DeadLetter]: ...


def create_app(queue: ServableQueue, api_key: str | None = None) -> FastAPI:
    """The routes: publish, (de)register remote consumers, list them, read dead letters.

    `api_key` defaults to the system's (`LLAMA_AGENTS_API_KEY`); with none, the routes are open.
    """
    api_key = configured_api_key(api_key)
    guard = Depends(api_key_guard(api_key))
    # FastAPI's own /docs and /openapi.json bypass app dependencies: served as guarded routes.
    app = FastAPI(
        title="llama-agents SimpleMessageQueue",
        dependencies=[guard],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=tracing.http_telemetry(),
    )
    consuming: dict[str, Any] = {}

    @app.exception_handler(UnroutableMessageError)
    async def _unroutable(_: Request, exc: UnroutableMessageError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc), "error": "unroutable"})

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/")
    async def home() -> dict[str, Any]:
        return {"service": "message_queue", "status": "running", "queues": queue.stats()}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.post("/publish")
    async def publish(request: Request) -> dict[str, str]:
        body = await request.body()
        try:
            message = QueueMessage.decode(body)
        except MessageDecodeError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        await queue.publish(message)
        return {"id_": message.id_}

    @app.post("/queues/{message_type}")
    async def declare(message_type: str) -> dict[str, str]:
        try:
            validate_routing_key(message_type)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        await queue.declare_queue(message_type)
        return {"queue": message_type}

    @app.post("/register_consumer")
    async def register(definition: RemoteMessageConsumerDef) -> dict[str, str]:
        # The definition's URL is validated (http/https with a host); deliveries carry the key.
        consumer = RemoteMessageConsumer(
            url=definition.url,
            message_type=definition.message_type,
            id_=definition.id_,
            api_key=api_key,
        )
        start = await queue.register_consumer(consumer)
        # A remote consumer cannot call back to start itself: it starts on registration.
        consuming[consumer.id_] = asyncio.ensure_future(start())
        return {"id_": consumer.id_, "message_type": consumer.message_type}

    @app.post("/deregister_consumer")
    async def deregister(definition: RemoteMessageConsumerDef) -> dict[str, str]:
        matching = [c for c in queue.consumers() if c.id_ == definition.id_]
        if not matching:
            raise HTTPException(
                status_code=404, detail=f"consumer {definition.id_} is not registered"
            )
        try:
            await queue.deregister_consumer(matching[0])
        except ConsumerNotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        consuming.pop(definition.id_, None)
        if isinstance(matching[0], RemoteMessageConsumer):
            await matching[0].aclose()
        return {"id_": definition.id_}

    @app.get("/consumers")
    async def list_consumers() -> list[dict[str, Any]]:
        return [_describe(c) for c in queue.consumers()]

    @app.get("/get_consumers/{message_type}")
    async def consumers_of(message_type: str) -> list[dict[str, Any]]:
        return [_describe(c) for c in queue.consumers() if c.message_type == message_type]

    async def read_dead_letters(
        limit: int | None, wait_for: int, timeout: float, *, remove: bool
    ) -> list[DeadLetter]:
        try:
            return await queue.fetch_dead_letters(
                limit, remove=remove, wait_for=wait_for, timeout=timeout
            )
        except TimeoutError:
            raise HTTPException(
                status_code=408, detail=f"fewer than {wait_for} dead letters after {timeout}s"
            ) from None

    @app.get("/dead_letters")
    async def peek_dead_letters(
        limit: int | None = Query(default=None, ge=1),
        remove: bool = False,
        wait_for: int = Query(default=0, ge=0),
        timeout: float = Query(default=10.0, gt=0, le=300),
    ) -> list[DeadLetter]:
        """The dead letters, oldest first; reading never removes them (crawlers read too)."""
        if remove:
            raise HTTPException(
                status_code=400,
                detail="GET never removes dead letters: use POST /dead_letters/take",
            )
        return await read_dead_letters(limit, wait_for, timeout, remove=False)

    @app.post("/dead_letters/take")
    async def take_dead_letters(
        limit: int | None = Query(default=None, ge=1),
        wait_for: int = Query(default=0, ge=0),
        timeout: float = Query(default=10.0, gt=0, le=300),
    ) -> list[DeadLetter]:
        """The dead letters, oldest first, removed from the queue."""
        return await read_dead_letters(limit, wait_for, timeout, remove=True)

    tracing.instrument_app(app)
    return app


def _describe(consumer: Any) -> dict[str, Any]:
    return {
        "id_": consumer.id_,
        "message_type": consumer.message_type,
        "kind": type(consumer).__name__,
        "url": getattr(consumer, "url", None),
    }


class SimpleMessageQueueServer:
    """Serves one queue over HTTP with uvicorn."""

    def __init__(
        self, queue: ServableQueue, *, host: str, port: int, api_key: str | None = None
    ) -> None:
        self.http = HttpServer(create_app(queue, api_key), host=host, port=port)

    async def serve(self, on_started: Callable[[int], None] | None = None) -> None:
        await self.http.serve(on_started)

    def stop(self) -> None:
        self.http.stop()
