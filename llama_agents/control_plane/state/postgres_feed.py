"""The PostgreSQL store's change feed: one LISTEN connection that hears every committed write.

Each write of the store calls `pg_notify(<channel>, <change as JSON>)` inside its own
transaction, so PostgreSQL delivers the notice only once (and only if) it commits. The
channel is named after the schema, so two systems in two schemas of one database do not hear
each other. A notice is not stored: when the LISTEN connection breaks, those sent meanwhile
are lost, so once it is back (reconnected with backoff) the feed hands its listeners a
`resync` change, and they reload what they cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from llama_agents.control_plane.state.base import StoreChange

logger = logging.getLogger("llama_agents.control_plane.state")

#: Channels are `llama_agents:<schema>` (the schema is at most 48 characters long, so the
#: name fits PostgreSQL's 63).
CHANNEL_PREFIX = "llama_agents:"

#: A notice's payload must stay under PostgreSQL's 8000 bytes.
MAX_PAYLOAD = 7900


def channel_for(schema: str) -> str:
    return CHANNEL_PREFIX + schema


def encode_change(change: StoreChange) -> str:
    """The notice's payload. A key too long for one (never a real id) becomes a resync."""
    fields = {"kind": change.kind, "key": change.key, "version": change.version}
    payload = json.dumps(
        {**fields, "origin": change.origin},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    if len(payload.encode()) > MAX_PAYLOAD:
        return encode_change(StoreChange("resync", "", None, change.origin))
    return payload


def decode_change(payload: str) -> StoreChange | None:
    """The change a notice carries; None for one that is not ours (logged)."""
    try:
        data = json.loads(payload)
        version = data["version"]
        return StoreChange(
            kind=str(data["kind"]),
            key=str(data["key"]),
            version=None if version is None else int(version),
            origin=str(data["origin"]),
        )
    except (ValueError, TypeError, KeyError):
        logger.warning("state store: ignoring a notice that is not a change: %.200r", payload)
        return None


class ChangeFeed:
    """LISTENs on `channel` over connections made by `connect`, and hands `deliver` each change.

    `origin` is the owning store's id: the origin of the resync changes the feed makes itself.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        deliver: Callable[[StoreChange], None],
        origin: str,
        *,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self._deliver = deliver
        self._origin = origin
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._connection: Any = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        #: Set while a LISTEN connection is up (tests and health checks await it).
        self.listening = asyncio.Event()

    async def start(self) -> None:
        """LISTEN now; if the server cannot be reached, keep trying in the background."""
        self._closed = False
        try:
            await self._listen()
        except Exception as exc:
            logger.warning("state store change feed: cannot LISTEN yet (%s); retrying", exc)
            self._schedule_reconnect()

    async def close(self) -> None:
        self._closed = True
        self.listening.clear()
        task, self._reconnecting = self._reconnecting, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._on_terminated)
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except Exception:
                connection.terminate()

    async def _listen(self) -> None:
        connection = await self._connect()
        try:
            await connection.add_listener(self.channel, self._on_notice)
        except BaseException:
            connection.terminate()
            raise
        if self._closed:  # closed while connecting
            connection.terminate()
            return
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        self.listening.set()

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        change = decode_change(payload)
        if change is not None:
            self._deliver(change)

    def _on_terminated(self, connection: Any) -> None:
        if connection is not self._connection or self._closed:
            return
        self._connection = None
        self.listening.clear()
        logger.warning("state store change feed: LISTEN connection lost; reconnecting")
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self._min_backoff
        while not self._closed:
            try:
                await self._listen()
            except Exception as exc:
                logger.debug("state store change feed: reconnect failed (%s)", exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # replicas spread out
                delay = min(delay * 2, self._max_backoff)
                continue
            if self._connection is not None:
                logger.info("state store change feed: listening again; resyncing watchers")
                # Notices sent while it was down are lost: whoever caches, reloads.
                self._deliver(StoreChange("resync", "", None, self._origin))
            return
