"""`SqliteKVStore`: llama-index's KV store interface on a local SQLite file.

The served control plane's default store: embedded (no server to install), durable across
a crash (WAL journal; a committed write survives `kill -9`), one row per key so a write
costs one small statement instead of rewriting a whole JSON file.

Async methods run the SQLite calls on one worker thread, so the event loop never blocks
on disk. Writes are group-committed: the writes that arrive while a commit is running go
into the next one, so under load one thread hop and one commit serve many writes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llama_index.core.storage.kvstore.types import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COLLECTION,
    BaseKVStore,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection, key)
)
"""


class SqliteKVStore(BaseKVStore):
    """A `BaseKVStore` kept in one SQLite file (created with its folder if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-kv")
        self._pending: list[tuple[str, str, str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def put(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection=collection)

    async def aput(
        self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION
    ) -> None:
        await self.aput_all([(key, val)], collection=collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._write([(collection, key, json.dumps(val)) for key, val in kv_pairs])

    def _write(self, rows: list[tuple[str, str, str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO kv (collection, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        for key, val in kv_pairs:
            self._pending.append((collection, key, json.dumps(val), done))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        """Commit everything queued, batch after batch, until nothing is left."""
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [(collection, key, value) for collection, key, value, _ in batch]
            try:
                await loop.run_in_executor(self._executor, self._write, rows)
            except Exception as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE collection = ? AND key = ?", (collection, key)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self._run(self.get, key, collection)
        return result

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE collection = ?", (collection,)
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._run(self.get_all, collection)
        return result

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM kv WHERE collection = ? AND key = ?", (collection, key)
            )
        return cursor.rowcount > 0

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        result: bool = await self._run(self.delete, key, collection)
        return result

    def close(self) -> None:
        """Close the database file."""
        self._executor.shutdown(wait=True)
        with self._lock:
            self._db.close()
