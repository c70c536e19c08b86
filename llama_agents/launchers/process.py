"""One part of a system as its own process (a container's entrypoint).

Settings come from arguments or `LLAMA_AGENTS_*` variables. The process waits for the broker
(and the control plane, for a service) with backoff, says what it waits for, registers, and
runs until SIGTERM or Ctrl-C; then it stops taking messages, finishes the ones it holds,
and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

from llama_agents._auth import configured_api_key
from llama_agents._retry import with_backoff
from llama_agents._runtime import tune_gc_for_serving
from llama_agents._serving import HttpServer
from llama_agents._settings import env_float, env_int, env_str
from llama_agents.control_plane.server import ControlPlaneServer
from llama_agents.errors import BrokerUnavailableError, ConfigurationError
from llama_agents.message_consumers.base import BaseMessageQueueConsumer
from llama_agents.message_queues.base import BaseMessageQueue
from llama_agents.message_queues.rabbitmq import RabbitMQMessageQueue
from llama_agents.message_queues.rabbitmq.connection import redact
from llama_agents.orchestrators.base import BaseOrchestrator
from llama_agents.services.base import BaseService

logger = logging.getLogger("llama_agents.process")

DEFAULT_CONTROL_PLANE_URL = "http://127.0.0.1:8000"


def startup_timeout() -> float:
    """Seconds to wait for the broker and the control plane (`LLAMA_AGENTS_STARTUP_TIMEOUT`)."""
    return env_float("STARTUP_TIMEOUT", 120.0)


def control_plane_url() -> str:
    return env_str("CONTROL_PLANE_URL", DEFAULT_CONTROL_PLANE_URL)


async def wait_for_broker(queue: BaseMessageQueue) -> None:
    """Connect to the broker, retrying with backoff while it is not up yet."""
    if not isinstance(queue, RabbitMQMessageQueue):
        return
    await with_backoff(
        queue.connect,
        what=f"RabbitMQ at {redact(queue.url)}",
        retry_on=(BrokerUnavailableError,),
        timeout=startup_timeout(),
    )


async def until_stopped(main: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run `main` until it ends or SIGTERM/SIGINT sets `stop`."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    await main


async def serve_control_plane(
    orchestrator: BaseOrchestrator,
    *,
    host: str | None = None,
    port: int | None = None,
    message_queue: BaseMessageQueue | None = None,
) -> None:
    """Serve a control plane until SIGTERM."""
    queue = message_queue or RabbitMQMessageQueue()
    await wait_for_broker(queue)
    control_plane = ControlPlaneServer(queue, orchestrator, host=host, port=port)
    stop = asyncio.Event()

    async def main() -> None:
        serving = asyncio.create_task(control_plane.launch_server())
        stopping = asyncio.create_task(stop.wait())
        ready = asyncio.create_task(control_plane.wait_until_serving(timeout=startup_timeout()))
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not ready.exception():
            logger.info("control plane ready at %s", control_plane.url)
            tune_gc_for_serving()
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        control_plane.stop_server()
        await serving  # it stops consuming and lets in-flight results finish
        stopping.cancel()
        await queue.close()

    await until_stopped(main(), stop)


async def serve_service(
    target: BaseService | BaseMessageQueueConsumer,
    *,
    host: str | None = None,
    port: int | None = None,
    public_host: str | None = None,
    register: bool = True,
) -> None:
    """Serve a service (HTTP + its queue, registered with the control plane), or run a bare
    consumer (e.g. a `human` result handler), until SIGTERM."""
    stop = asyncio.Event()
    if isinstance(target, BaseMessageQueueConsumer):
        await until_stopped(_consume(target, stop), stop)
        return
    if not isinstance(target, BaseService):
        raise ConfigurationError(f"cannot serve {target!r}: not a service or a consumer")
    if host is not None:
        target.host = host
    if port is not None:
        target.port = port
    if public_host is not None:
        target.public_host = public_host
    await wait_for_broker(target.message_queue)

    async def main() -> None:
        serving = asyncio.create_task(target.launch_server())
        stopping = asyncio.create_task(stop.wait())
        ready = asyncio.create_task(target.wait_until_serving(timeout=startup_timeout()))
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            ready.cancel()
            serving.result()  # it failed to start: say why
            return
        if register:
            try:
                await target.register_to_control_plane(control_plane_url())
            except BaseException:
                # Stop the server cleanly first: left running, it would be cancelled when the
                # loop closes, and uvicorn would log that as a traceback.
                target.stop_server()
                await asyncio.wait({serving})
                stopping.cancel()
                await target.message_queue.close()
                raise
        logger.info("service %s ready at %s", target.service_name, target.url)
        tune_gc_for_serving()
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        target.stop_server()
        await serving  # drains: finishes the messages it holds
        stopping.cancel()
        await target.message_queue.close()

    await until_stopped(main(), stop)


async def _consume(consumer: BaseMessageQueueConsumer, stop: asyncio.Event) -> None:
    queue = RabbitMQMessageQueue()
    await wait_for_broker(queue)
    start = await queue.register_consumer(consumer)
    consuming = asyncio.create_task(start())
    metrics = _consumer_metrics(queue)
    serving = asyncio.create_task(metrics.serve()) if metrics is not None else None
    logger.info("consumer of %r ready", consumer.message_type)
    tune_gc_for_serving()
    try:
        await stop.wait()
    finally:
        if metrics is not None and serving is not None:
            metrics.stop()
            await asyncio.gather(serving, return_exceptions=True)
        await queue.deregister_consumer(consumer)
        consuming.cancel()
        await queue.close()


def _consumer_metrics(queue: RabbitMQMessageQueue) -> HttpServer | None:
    """A bare consumer has no HTTP API: with `LLAMA_AGENTS_SERVICE_PORT` set, it serves its
    queue's `/metrics` there (with the API key, like every route), for a scraper."""
    port = os.environ.get("LLAMA_AGENTS_SERVICE_PORT")
    if not port:
        return None
    from llama_agents.metrics.http import metrics_server

    return metrics_server(
        queue.metrics,
        host=env_str("SERVICE_HOST", "127.0.0.1"),
        port=env_int("SERVICE_PORT", 0),
        api_key=configured_api_key(),
    )
