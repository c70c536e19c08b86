"""The HTTP face of a `SimpleMessageQueue`, so processes can share one embedded queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from llama_agents._serving import HttpServer
from llama_agents.errors import ConsumerNotFoundError, MessageDecodeError, UnroutableMessageError
from llama_agents.message_consumers.remote import RemoteMessageConsumer, RemoteMessageConsumerDef
from llama_agents.message_queues.delivery import DeadLetter
from llama_agents.messages import QueueMessage, validate_routing_key

if TYPE_CHECKING:
    from llama_agents.message_queues.simple.queue import SimpleMessageQueue


def create_app(queue: SimpleMessageQueue) -> FastAPI:
    """The routes: publish, (de)register remote consumers, list them, read dead letters."""
    app = FastAPI(title="llama-agents SimpleMessageQueue")
    consuming: dict[str, Any] = {}

    @app.exception_handler(UnroutableMessageError)
    async def _unroutable(_: Request, exc: UnroutableMessageError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc), "error": "unroutable"})

    @app.get("/")
    async def home() -> dict[str, Any]:
        return {"service": "message_queue", "status": "running", "queues": queue.stats()}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

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
        consumer = RemoteMessageConsumer(
            url=definition.url, message_type=definition.message_type, id_=definition.id_
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

    @app.get("/dead_letters")
    async def dead_letters(
        limit: int | None = Query(default=None, ge=1),
        remove: bool = True,
        wait_for: int = Query(default=0, ge=0),
        timeout: float = Query(default=10.0, gt=0, le=300),
    ) -> list[DeadLetter]:
        try:
            return await queue.fetch_dead_letters(
                limit, remove=remove, wait_for=wait_for, timeout=timeout
            )
        except TimeoutError:
            raise HTTPException(
                status_code=408, detail=f"fewer than {wait_for} dead letters after {timeout}s"
            ) from None

    return app


def _describe(consumer: Any) -> dict[str, Any]:
    return {
        "id_": consumer.id_,
        "message_type": consumer.message_type,
        "kind": type(consumer).__name__,
        "url": getattr(consumer, "url", None),
    }


class SimpleMessageQueueServer:
    """Serves one `SimpleMessageQueue` over HTTP with uvicorn."""

    def __init__(self, queue: SimpleMessageQueue, *, host: str, port: int) -> None:
        self.http = HttpServer(create_app(queue), host=host, port=port)

    async def serve(self, on_started: Callable[[int], None] | None = None) -> None:
        await self.http.serve(on_started)

    def stop(self) -> None:
        self.http.stop()
