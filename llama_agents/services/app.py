"""The HTTP face every served service has: status, health, and message delivery by POST.

It knows a service only through `ServedService`, the few things it asks of one; `BaseService`
has them. The dependency runs one way: this module never imports the service classes, and
`services/base.py` never imports this module (the `llama_agents.services` package hands
`create_service_app` to `BaseService` as its `app_factory`).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llama_agents import tracing
from llama_agents._auth import require_api_key
from llama_agents.errors import NonRetryableMessageError
from llama_agents.messages import QueueMessage
from llama_agents.metrics import MetricSet, add_metrics_route
from llama_agents.metrics.http import open_paths


class Connectivity(Protocol):
    """What the face asks of a service's message queue: whether messages flow."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def is_healthy(self) -> bool: ...

    def health(self) -> dict[str, Any]: ...

    @property
    def metrics(self) -> MetricSet: ...


class ServedService(Protocol):
    """What the HTTP face needs of a service."""

    @property
    def service_name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def api_key(self) -> str | None:
        """The key every route but `/health` asks for; None: no key."""

    @property
    def message_queue(self) -> Connectivity: ...

    @property
    def metrics(self) -> MetricSet:
        """Its own metrics (served with its message queue's at `/metrics`)."""

    @property
    def metrics_open(self) -> bool:
        """Whether `/metrics` answers without the API key."""

    def status(self) -> dict[str, Any]:
        """What `GET /` answers."""

    async def handle_message(self, message: QueueMessage, **kwargs: Any) -> None:
        """Handle one delivered message; raise to have it retried."""

    def add_routes(self, app: FastAPI) -> None:
        """Add the service's own routes to `app`."""


def create_service_app(service: ServedService) -> FastAPI:
    """`GET /`, `GET /health`, `POST /process_message`, plus the service's own routes.

    With an API key configured, every route but `/health` needs it, the API's documentation
    (`/docs`, `/redoc`, `/openapi.json`) included.
    """
    app = FastAPI(
        title=f"llama-agents service {service.service_name}",
        description=service.description,
        telemetry=tracing.http_telemetry(),
    )
    require_api_key(app, service.api_key, also_open=open_paths(service.metrics_open))

    @app.exception_handler(NonRetryableMessageError)
    async def _bad_message(_: Request, exc: NonRetryableMessageError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/")
    async def home() -> dict[str, Any]:
        return service.status()

    @app.get("/health")
    async def health() -> JSONResponse:
        """503 while the broker is gone or a consumer is stuck (messages it cannot settle)."""
        queue = service.message_queue
        ready = queue.is_healthy
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "healthy" if ready else "unhealthy", **queue.health()},
        )

    @app.post("/process_message")
    async def process_message(request: Request) -> dict[str, str]:
        """Delivery for remote consumers: 200 only once the message was handled."""
        message = QueueMessage.decode(await request.body())
        await service.handle_message(message)
        return {"id_": message.id_, "status": "processed"}

    async def metric_sets() -> list[MetricSet]:
        return [service.metrics, service.message_queue.metrics]

    add_metrics_route(app, metric_sets)
    service.add_routes(app)
    tracing.instrument_app(app)
    return app
