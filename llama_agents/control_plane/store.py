"""The control plane's state on any llama-index KV store: tasks and registered services.

Records are stored as plain JSON dicts (pydantic's JSON mode); nothing is pickled, so a
Redis or Postgres KV store holds readable rows.

The control plane is the only writer of its tasks, so recently used task records are also
kept in memory (write-through: every save goes to the store first). Reading a task that is
being worked on costs no store round trip.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

from llama_index.core.storage.kvstore import SimpleKVStore
from llama_index.core.storage.kvstore.types import BaseKVStore

from llama_agents._settings import env_str
from llama_agents.control_plane.models import TaskRecord
from llama_agents.control_plane.sqlite_store import SqliteKVStore
from llama_agents.messages import ServiceDefinition
from llama_agents.messages.envelope import utc_now

TASKS = "tasks"
SERVICES = "services"

#: Where a served control plane keeps its state unless told otherwise.
DEFAULT_STATE_PATH = ".llama_agents/control_plane.sqlite3"


def default_disk_store(path: str | Path | None = None) -> SqliteKVStore:
    """The on-disk store: `path`, else `LLAMA_AGENTS_STATE_PATH`, else `./.llama_agents/`."""
    return SqliteKVStore(path or env_str("STATE_PATH", DEFAULT_STATE_PATH))


def in_memory_store() -> SimpleKVStore:
    """A store that lives as long as the process (for `LocalLauncher` and notebooks)."""
    return SimpleKVStore()


class ControlPlaneStore:
    """Typed access to the two collections the control plane keeps."""

    def __init__(self, kv: BaseKVStore, *, namespace: str = "", cached_tasks: int = 10_000) -> None:
        self.kv = kv
        self._tasks = f"{namespace}{TASKS}"
        self._services = f"{namespace}{SERVICES}"
        self._cache: OrderedDict[str, TaskRecord] = OrderedDict()
        self._cache_size = cached_tasks

    def _remember(self, record: TaskRecord) -> None:
        self._cache[record.task_id] = record
        self._cache.move_to_end(record.task_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def save_task(self, record: TaskRecord) -> None:
        record.updated_at = utc_now()
        await self.kv.aput(record.task_id, record.model_dump(mode="json"), self._tasks)
        self._remember(record)

    async def load_task(self, task_id: str) -> TaskRecord | None:
        """The task's record: the live, cached one (do not change it without saving)."""
        cached = self._cache.get(task_id)
        if cached is not None:
            return cached
        raw = await self.kv.aget(task_id, self._tasks)
        if raw is None:
            return None
        # Deep-copied: in-memory stores hand out their own nested objects.
        record = TaskRecord.model_validate(copy.deepcopy(raw))
        self._remember(record)
        return record

    async def all_tasks(self) -> list[TaskRecord]:
        raw = await self.kv.aget_all(self._tasks)
        records = [TaskRecord.model_validate(copy.deepcopy(value)) for value in raw.values()]
        return sorted(records, key=lambda record: record.created_at)

    async def save_service(self, definition: ServiceDefinition) -> None:
        await self.kv.aput(
            definition.service_name, definition.model_dump(mode="json"), self._services
        )

    async def load_service(self, name: str) -> ServiceDefinition | None:
        raw = await self.kv.aget(name, self._services)
        return None if raw is None else ServiceDefinition.model_validate(raw)

    async def all_services(self) -> list[ServiceDefinition]:
        raw = await self.kv.aget_all(self._services)
        return sorted(
            (ServiceDefinition.model_validate(value) for value in raw.values()),
            key=lambda definition: definition.service_name,
        )

    async def delete_service(self, name: str) -> bool:
        return await self.kv.adelete(name, self._services)
