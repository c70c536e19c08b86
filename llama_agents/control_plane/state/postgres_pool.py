"""The PostgreSQL store's connections: an asyncpg pool that outlives a server restart.

asyncpg replaces a pooled connection that died on its next `acquire()`, so a store whose
server restarted works again without help. What this module adds:

- a connection error (the server down, restarting, or the connection cut) becomes a
  `StateStoreUnavailableError`, never a driver exception;
- a call that failed that way is retried once, at once, where running it again cannot
  apply it twice: a read or an idempotent write, a transaction that broke before its COMMIT
  was sent (the server rolled it back), or any call whose connection could not be opened.
  A COMMIT whose answer was lost is never retried: its outcome is unknown, and the error
  says so;
- after a connection error every pooled connection is expired (replaced on its next use),
  since its siblings are likely dead too.

asyncpg is imported when a pool is made, so the store's modules import without it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from llama_agents.errors import ConfigurationError, StateStoreUnavailableError

logger = logging.getLogger("llama_agents.control_plane.state")

T = TypeVar("T")

#: An operation on one connection (an asyncpg `Connection`; asyncpg has no type hints).
Operation = Callable[[Any], Awaitable[T]]

INSTALL_HINT = "pip install 'llama-agents[postgres]'"


def load_asyncpg() -> Any:
    """The asyncpg module, or a `ConfigurationError` that says how to install it."""
    try:
        import asyncpg  # type: ignore[import-untyped]  # no type hints of its own
    except ImportError as exc:
        raise ConfigurationError(
            f"a PostgreSQL state store needs the asyncpg package: {INSTALL_HINT}"
        ) from exc
    return asyncpg


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its credentials (for error messages and logs)."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "postgresql://?"
    return f"postgresql://{host}:{port}{parts.path}"


def is_connection_error(exc: BaseException, closed: bool = False) -> bool:
    """True when `exc` says the server is unreachable or the connection is gone (as opposed
    to a statement the server refused); `closed`: the connection it came from is closed."""
    asyncpg = load_asyncpg()
    errors = asyncpg.exceptions
    if isinstance(exc, OSError):  # refused, reset, unreachable, connect timeout
        return True
    if isinstance(exc, errors.PostgresConnectionError | errors.TooManyConnectionsError):
        return True
    if isinstance(exc, errors.OperatorInterventionError):
        # Shutting down, starting up, terminated; not a cancelled statement.
        return not isinstance(exc, errors.QueryCanceledError)
    if isinstance(exc, errors.InternalClientError):
        return True  # see `_refused_before_sending`
    return closed and isinstance(exc, errors.InterfaceError)


def _refused_before_sending(exc: BaseException) -> bool:
    """asyncpg refused to start the statement: nothing of it reached the server.

    It does so on a connection whose server has just ended it (the FATAL message arrived, the
    close not yet), which a pool can hand out in that instant.
    """
    return isinstance(exc, load_asyncpg().exceptions.InternalClientError)


@dataclass
class _Attempt:
    """How far one attempt got, which decides whether it may be retried."""

    connected: bool = False
    committing: bool = False
    #: The connection was found closed when the call failed.
    closed: bool = False


class PostgresPool:
    """An asyncpg pool for `dsn`; `init` prepares each new connection (codecs)."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        application_name: str,
        init: Callable[[Any], Awaitable[None]],
        connect_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self.min_size = min_size
        self.max_size = max_size
        self.application_name = application_name
        self._init = init
        self.connect_timeout = connect_timeout
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        asyncpg = load_asyncpg()
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                init=self._init,
                reset=_keep_session,
                timeout=self.connect_timeout,
                server_settings={"application_name": self.application_name},
            )
        except Exception as exc:
            if is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except Exception:
            logger.debug("state store: closing the pool failed; terminating it", exc_info=True)
            pool.terminate()

    async def connect(self, application_name: str) -> Any:
        """A connection of its own, outside the pool (for LISTEN)."""
        asyncpg = load_asyncpg()
        return await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={"application_name": application_name},
        )

    async def run(self, op: Operation[T], *, idempotent: bool) -> T:
        """`op` on a pooled connection, outside a transaction (each statement commits itself).

        Retried once after a connection error if `idempotent` (a read, or a write that
        running twice leaves as running once), else only if no connection could be opened.
        """
        return await self._attempt(op, transaction=False, idempotent=idempotent)

    async def transaction(self, op: Operation[T]) -> T:
        """`op` in one transaction; retried once if the connection broke before COMMIT."""
        return await self._attempt(op, transaction=True, idempotent=False)

    async def _attempt(self, op: Operation[T], *, transaction: bool, idempotent: bool) -> T:
        if self._pool is None:
            await self.open()
        for retry in (False, True):
            attempt = _Attempt()
            try:
                return await self._once(op, transaction, attempt)
            except Exception as exc:
                if not is_connection_error(exc, attempt.closed):
                    raise
                if self._pool is not None:
                    await self._pool.expire_connections()
                unsent = _refused_before_sending(exc)
                if attempt.committing and not unsent:
                    raise self._unavailable(
                        exc,
                        "the connection broke while committing: the write may or may "
                        "not have been applied",
                    ) from exc
                safe = idempotent or transaction or not attempt.connected or unsent
                if retry or not safe:
                    raise self._unavailable(exc) from exc
                logger.info("state store: connection error (%s); retrying once", exc)
        raise StateStoreUnavailableError("state store: no attempt left")  # pragma: no cover

    async def _once(self, op: Operation[T], transaction: bool, attempt: _Attempt) -> T:
        assert self._pool is not None
        async with self._pool.acquire() as connection:
            attempt.connected = True
            try:
                if not transaction:
                    return await op(connection)
                tx = connection.transaction()
                await tx.start()
                try:
                    result = await op(connection)
                except BaseException:
                    await _rollback(tx, connection)
                    raise
                attempt.committing = True
                await tx.commit()
                return result
            except Exception:
                attempt.closed = _is_closed(connection)
                raise

    def _unavailable(self, exc: BaseException, detail: str = "") -> StateStoreUnavailableError:
        why = f"{type(exc).__name__}: {exc}".rstrip(": ")
        tail = f"; {detail}" if detail else ""
        return StateStoreUnavailableError(
            f"the PostgreSQL state store at {self.where} is unavailable ({why}){tail}"
        )


async def _rollback(tx: Any, connection: Any) -> None:
    """Roll back after a failed statement; on a dead connection there is nothing to undo
    (the server rolled it back), and the statement's own error is the one to raise."""
    if _is_closed(connection):
        return
    try:
        await tx.rollback()
    except Exception as exc:
        if not is_connection_error(exc, _is_closed(connection)):
            raise


def _is_closed(connection: Any) -> bool:
    """Whether a pooled connection is closed; one that died was handed back to the pool at
    once (asyncpg then refuses to be asked), which says the same."""
    try:
        return bool(connection.is_closed())
    except load_asyncpg().InterfaceError:
        return True


async def _keep_session(connection: Any) -> None:
    """What a connection needs before it goes back to the pool: nothing.

    The store changes no session state on pooled connections (no SET, LISTEN, session-level
    advisory lock or open cursor; the change feed has a connection of its own), so asyncpg's
    default reset (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), one
    more round trip on every release, undoes nothing. asyncpg still rolls back a transaction
    left open before calling this.
    """
