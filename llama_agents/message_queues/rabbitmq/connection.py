"""The process's connection to RabbitMQ: robust (restores channels, queues and consumers after
a drop) and reconnecting with exponential backoff instead of aio-pika's fixed interval.

Given the several nodes of a cluster, it connects to the first that answers (starting at a
random one, so replicas spread over the nodes) and, when that connection drops, reconnects to
the next node at once, round robin; only once every node failed in a row does it wait the
backoff delay. aio-pika reconnects to `self.url`, and every failed attempt or dropped
connection passes through `_on_connection_close` before the next attempt starts: that is
where the next address is set.

A broker that refuses the credentials is not "down": the first connect raises
`BrokerAuthenticationError` at once, and a reconnect that is refused ends the connection
instead of retrying forever with a password that will not start working by itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from aio_pika.abc import TimeoutType
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from aiormq.exceptions import AuthenticationError, ProbableAuthenticationError
from yarl import URL

from llama_agents.errors import (
    BrokerAuthenticationError,
    BrokerUnavailableError,
    ConfigurationError,
)
from llama_agents.message_queues.rabbitmq.addresses import redact, redact_url

__all__ = ["BackoffRobustConnection", "authentication_error", "connect", "is_refusal", "redact"]

logger = logging.getLogger("llama_agents.rabbitmq")


class BackoffRobustConnection(RobustConnection):
    """A robust connection that tries each node in turn and backs off while all are down.

    The delay before an attempt is zero while the current round still has nodes to try; after
    a round in which every node failed it is derived from how long the connection has been
    down: `base` right after a drop, then roughly the time already spent waiting (so 0.5,
    0.5, 1, 2, 4 ... seconds), capped at `max_interval`, with 20% jitter so replicas do not
    reconnect in lockstep. With one address every attempt is a round.
    """

    def __init__(
        self,
        addresses: Sequence[URL],
        start: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ):
        if not addresses:
            raise ConfigurationError("a connection needs at least one broker address")
        self.addresses = tuple(addresses)
        self._index = start % len(self.addresses)
        self._base_interval = float(kwargs.pop("base_reconnect_interval", 0.5))
        self._max_interval = float(kwargs.pop("max_reconnect_interval", 30.0))
        self._down_since: float | None = None
        #: Attempts (and drops) that failed since the connection was last up.
        self._failures = 0
        #: The address of the node this connection is up on; None while it is down.
        self.connected_url: URL | None = None
        self.refused: BrokerAuthenticationError | None = None
        #: Called once when a reconnect is refused (the connection then closes for good).
        self.on_refused: Callable[[BrokerAuthenticationError], None] | None = None
        self._closing: asyncio.Task[None] | None = None
        super().__init__(self.addresses[self._index], loop=loop, **kwargs)

    @property
    def reconnect_interval(self) -> float:
        if self.connected.is_set():
            self._down_since = None
            return self._base_interval
        if self._failures % len(self.addresses):
            return 0.0  # this round still has nodes to try: try the next one at once
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

    async def _on_connected(self) -> None:
        self.connected_url = self.url
        self._failures = 0
        logger.info("connected to RabbitMQ at %s", redact_url(self.url))
        await super()._on_connected()

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # A failed (re)connect attempt lands here too, with the attempt's error.
        exc = None if closing.cancelled() else closing.exception()
        self.connected_url = None
        self._failures += 1
        if is_refusal(exc) and self.refused is None:
            self.refused = authentication_error(str(self.url), exc)
            if self.connection_attempt > 0:
                # A reconnect was refused: stop here (connect() handles the first attempt).
                logger.error("%s; not reconnecting", self.refused)
                self._closing = asyncio.create_task(self.close(self.refused))
                if self.on_refused is not None:
                    self.on_refused(self.refused)
                return
        if len(self.addresses) > 1 and not (self._close_called or self.is_closed):
            # The next attempt, which starts only after this returns, goes to the next node.
            self._index = (self._index + 1) % len(self.addresses)
            self.url = self.addresses[self._index]
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


async def connect(
    addresses: Sequence[URL],
    *,
    connect_timeout: float,
    reconnect_interval: float,
    max_reconnect_interval: float,
    connection_name: str | None = None,
    start: int | None = None,
) -> BackoffRobustConnection:
    """Open a robust connection to the first node that answers, trying each in turn from
    `start` (default: a random one, so the processes of a system spread over a cluster).

    Each attempt may take `connect_timeout` seconds. `BrokerUnavailableError` if no node
    answers; `BrokerAuthenticationError` at once if one refuses the credentials (a cluster's
    nodes share their users, so another node would refuse them too).
    """
    first = random.randrange(len(addresses)) if start is None else start
    failures: list[tuple[str, str]] = []
    last: BaseException | None = None
    for offset in range(len(addresses)):
        index = (first + offset) % len(addresses)
        url = addresses[index]
        # Each attempt needs its own object: a robust connection whose first attempt failed
        # does not try again.
        connection = BackoffRobustConnection(
            addresses,
            start=index,
            client_properties={"connection_name": connection_name or "llama-agents"},
            base_reconnect_interval=reconnect_interval,
            max_reconnect_interval=max_reconnect_interval,
        )
        try:
            await connection.connect(timeout=connect_timeout)
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            await connection.close()
            if is_refusal(exc):
                raise authentication_error(str(url), exc) from exc
            failures.append((redact_url(url), f"{type(exc).__name__}: {exc}"))
            if len(addresses) > 1:
                logger.warning("cannot connect to RabbitMQ at %s: %s", *failures[-1])
            last = exc
            continue
        return connection
    if len(failures) == 1:
        where, why = failures[0]
    else:
        where, why = "any of its nodes", "; ".join(f"{url}: {reason}" for url, reason in failures)
    raise BrokerUnavailableError(
        f"cannot connect to RabbitMQ at {where} within {connect_timeout}s: {why}. "
        "Is the broker running? Set the URL with LLAMA_AGENTS_AMQP_URL or the url argument."
    ) from last
