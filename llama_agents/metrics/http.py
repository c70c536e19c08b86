"""`GET /metrics`: the Prometheus text format of some metric sets, on an app or on its own.

The route asks for the API key like every other one, unless the owner was configured open
(`metrics_open=True`, `LLAMA_AGENTS_METRICS_OPEN=1`): then `/metrics` alone is open, for a
scraper on a private network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llama_agents import tracing
from llama_agents._auth import require_api_key
from llama_agents._serving import HttpServer
from llama_agents.metrics._base import MetricSet, Union, metrics_enabled, metrics_open

METRICS_PATH = "/metrics"

#: Gives the sets to render, after refreshing what must be read at scrape time.
Sources = Callable[[], Awaitable[Iterable[MetricSet]]]


def render(sets: Iterable[MetricSet]) -> bytes:
    """The Prometheus text exposition of `sets` (the enabled ones)."""
    return generate_latest(Union(sets))


def open_paths(open_: bool) -> frozenset[str]:
    """The paths to leave open besides `/health`: `/metrics` when configured open."""
    return frozenset({METRICS_PATH}) if open_ else frozenset()


def add_metrics_route(app: FastAPI, sources: Sources) -> None:
    """`GET /metrics` on `app` (none when `LLAMA_AGENTS_METRICS` is off)."""
    if not metrics_enabled():
        return

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        return Response(render(await sources()), media_type=CONTENT_TYPE_LATEST)


def metrics_app(*sets: MetricSet, api_key: str | None = None, open: bool | None = None) -> FastAPI:
    """An ASGI app serving `sets` at `/metrics` (and `/health`): mount it, or `serve_metrics`.

    For a bare consumer, e.g. `metrics_app(message_queue.metrics)`. With `api_key`, the
    key is needed unless `open` (default `LLAMA_AGENTS_METRICS_OPEN`).
    """
    app = FastAPI(
        title="llama-agents metrics", openapi_url=None, telemetry=tracing.http_telemetry()
    )
    require_api_key(app, api_key, also_open=open_paths(metrics_open(open)))

    async def sources() -> Iterable[MetricSet]:
        return sets

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    add_metrics_route(app, sources)
    tracing.instrument_app(app)
    return app


def metrics_server(
    *sets: MetricSet,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    open: bool | None = None,
) -> HttpServer:
    """An HTTP server for `metrics_app(*sets)`: `await server.serve()` in a task,
    `await server.wait_started()` gives its port, `server.stop()` ends it."""
    return HttpServer(metrics_app(*sets, api_key=api_key, open=open), host=host, port=port)
