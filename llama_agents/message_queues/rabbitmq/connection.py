"""The process's connection to RabbitMQ: robust (restores channels, queues and consumers after
a drop) and reconnecting with exponential backoff instead of aio-pika's fixed interval.

A broker that refuses the credentials is not "down": the first connect raises
`BrokerAuthenticationError` at once, and a reconnect that is refused ends the connection
instead of retrying forever with a password that will not start working by itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from aio_pika.abc import TimeoutType
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from aiormq.exceptions import AuthenticationError, ProbableAuthenticationError
from yarl import URL

from llama_agents.errors import BrokerAuthenticationError, BrokerUnavailableError

logger = logging.getLogger("llama_agents.rabbitmq")


class BackoffRobustConnection(RobustConnection):
    """A robust connection whose reconnect delay doubles while the broker stays down.

    The delay is derived from how long the connection has been down: `base` right after a
    drop, then roughly the time already spent waiting (so 0.5, 0.5, 1, 2, 4 ... seconds),
    capped at `max_interval`, with 20% jitter so replicas do not reconnect in lockstep.
    """

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any):
        self._base_interval = float(kwargs.pop("base_reconnect_interval", 0.5))
        self._max_interval = float(kwargs.pop("max_reconnect_interval", 30.0))
        self._down_since: float | None = None
        self.refused: BrokerAuthenticationError | None = None
        #: Called once when a reconnect is refused (the connection then closes for good).
        self.on_refused: Callable[[BrokerAuthenticationError], None] | None = None
        self._closing: asyncio.Task[None] | None = None
        super().__init__(url, loop=loop, **kwargs)

    @property
    def reconnect_interval(self) -> float:
        if self.connected.is_set():
            self._down_since = None
            return self._base_interval
        now = self.loop.time()
        if self._down_since is None:
            self._down_since = now
        waited = now - self._down_since
        delay = min(self._max_interval, max(self._base_interval, waited))
        return delay * random.uniform(0.9, 1.1)

    @reconnect_interval.setter
    def reconnect_interval(self, value: TimeoutType) -> None:
        # aio-pika assigns its URL/default interval here; our base interval governs instead.
        return None

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # A failed (re)connect attempt lands here too, with the attempt's error.
        exc = None if closing.cancelled() else closing.exception()
        if is_refusal(exc) and self.refused is None:
            self.refused = authentication_error(str(self.url), exc)
            if self.connection_attempt > 0:
                # A reconnect was refused: stop here (connect() handles the first attempt).
                logger.error("%s; not reconnecting", self.refused)
                self._closing = asyncio.create_task(self.close(self.refused))
                if self.on_refused is not None:
                    self.on_refused(self.refused)
                return
        await super()._on_connection_close(closing)


def is_refusal(exc: BaseException | None) -> bool:
    """True for the broker refusing the login (ACCESS_REFUSED), not for it being unreachable."""
    return isinstance(exc, AuthenticationError | ProbableAuthenticationError)


def authentication_error(url: str, exc: BaseException | None) -> BrokerAuthenticationError:
    parsed = URL(url)
    return BrokerAuthenticationError(
        f"RabbitMQ at {parsed.host}:{parsed.port} refused the login of user "
        f"{parsed.user or 'guest'!r} (vhost {parsed.path.lstrip('/') or '/'!r}): {exc}. "
        "Check the user name and password in LLAMA_AGENTS_AMQP_URL (or the url argument); "
        "RabbitMQ's guest user may only log in from localhost."
    )


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    parsed = URL(url)
    if parsed.password:
        parsed = parsed.with_password("***")
    return str(parsed)


async def connect(
    url: str,
    *,
    connect_timeout: float,
    reconnect_interval: float,
    max_reconnect_interval: float,
    connection_name: str | None = None,
) -> BackoffRobustConnection:
    """Open a robust connection; raise `BrokerUnavailableError` if the first attempt fails,
    `BrokerAuthenticationError` if the broker refused the credentials."""
    connection = BackoffRobustConnection(
        URL(url),
        client_properties={"connection_name": connection_name or "llama-agents"},
        base_reconnect_interval=reconnect_interval,
        max_reconnect_interval=max_reconnect_interval,
    )
    try:
        await connection.connect(timeout=connect_timeout)
    except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
        await connection.close()
        if is_refusal(exc):
            raise authentication_error(url, exc) from exc
        raise BrokerUnavailableError(
            f"cannot connect to RabbitMQ at {redact(url)} within {connect_timeout}s: "
            f"{type(exc).__name__}: {exc}. Is the broker running? Set the URL with "
            "LLAMA_AGENTS_AMQP_URL or the url argument."
        ) from exc
    return connection
