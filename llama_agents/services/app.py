"""The HTTP face every served service has: status, health, and message delivery by POST."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from llama_agents._auth import api_key_guard
from llama_agents.errors import NonRetryableMessageError
from llama_agents.messages import QueueMessage

if TYPE_CHECKING:
    from llama_agents.services.base import BaseService


def create_service_app(service: BaseService) -> FastAPI:
    """`GET /`, `GET /health`, `POST /process_message`, plus the service's own routes.

    With an API key configured, every route but `/health` needs it.
    """
    app = FastAPI(
        title=f"llama-agents service {service.service_name}",
        dependencies=[Depends(api_key_guard(service.api_key))],
    )

    @app.exception_handler(NonRetryableMessageError)
    async def _bad_message(_: Request, exc: NonRetryableMessageError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/")
    async def home() -> dict[str, Any]:
        return service.status()

    @app.get("/health")
    async def health() -> JSONResponse:
        ready = service.message_queue.is_connected
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ok" if ready else "unavailable", "broker_connected": ready},
        )

    @app.post("/process_message")
    async def process_message(request: Request) -> dict[str, str]:
        """Delivery for remote consumers: 200 only once the message was handled."""
        message = QueueMessage.decode(await request.body())
        await service.handle_message(message)
        return {"id_": message.id_, "status": "processed"}

    service.add_routes(app)
    return app
