"""Control planes as replicas on one shared store: liveness, and who takes over the dead's work.

Every replica answers any request and takes any result from the shared `control_plane`
queue; what one of them holds only in memory (a step stored but not yet published, a
decision under way, a deadline's timer) dies with it. So each replica beats (its liveness,
with a time to live, in the store), each saved task names the replica that last handled it
(`TaskRecord.handled_by`), and one replica at a time, the holder of the `recovery` lease,
looks after the rest: when it takes the lease, and whenever a replica stops beating, it
recovers the unfinished tasks whose replica is no longer live. Recovery runs once, not by
every replica at once; a replica killed with `kill -9` is taken over after the time to
live (`LLAMA_AGENTS_REPLICA_TTL`, default 6 s).

Timers drive this, not messages: a dead process sends nothing, so only its silence tells.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from llama_agents.control_plane.state import StateStore, StoreChange
from llama_agents.errors import ConfigurationError

logger = logging.getLogger("llama_agents.control_plane")

#: The lease whose holder recovers the work of replicas that died.
RECOVERY_LEASE = "recovery"


#: Recovers the unfinished tasks whose last replica the predicate accepts; returns how many
#: it resumed (`TaskManager.recover`).
Recover = Callable[[Callable[[str | None], bool]], Awaitable[int]]


class ReplicaWatch:
    """Keeps this replica's liveness in the store; as the recovery lease's holder, takes
    over what dead replicas left.

    Args:
        store: the shared store.
        replica_id: this replica's id (what its saves write into `handled_by`).
        recover: recovers the unfinished tasks of the replicas a predicate accepts.
        interval: seconds between beats.
        ttl: seconds a replica counts as live after its last beat (and the lease's term).
    """

    def __init__(
        self,
        store: StateStore,
        replica_id: str,
        recover: Recover,
        *,
        interval: float = 2.0,
        ttl: float = 6.0,
    ) -> None:
        if interval <= 0 or ttl <= interval:
            raise ConfigurationError("the replica ttl must be longer than the beat interval")
        self.store = store
        self.replica_id = replica_id
        self._recover = recover
        self.interval = interval
        self.ttl = ttl
        self.holds_lease = False
        self._live: set[str] = set()
        self._resync = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._queued: list[Callable[[str | None], bool]] = []
        self._recovering: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Beat once and, if this replica gets the lease, recover now; then keep beating."""
        self._unwatch = self.store.watch(self._on_change)
        await self.beat()
        self._loop = asyncio.create_task(self._run(), name="control-plane-replica-watch")

    def _on_change(self, change: StoreChange) -> None:
        if change.kind == "resync":
            self.store_reconnected()

    def store_reconnected(self) -> None:
        """The store's notices were cut (it restarted, or the network did): work of this
        replica may have failed on it meanwhile. Recover it at once, on the next beat."""
        self._resync = True
        self._wake.set()

    async def beat(self) -> None:
        """One round: say this replica lives; take or keep the lease; recover what the
        replicas that went silent left (as the lease's holder) and, after the store came
        back, what failed here while it was away."""
        await self.store.beat(self.replica_id, self.ttl)
        live = await self.store.live_replicas()
        live.add(self.replica_id)
        held = await self.store.try_lease(RECOVERY_LEASE, self.replica_id, self.ttl)
        gone = self._live - live
        took_over = held and not self.holds_lease
        self.holds_lease = held
        self._live = live
        resync, self._resync = self._resync, False
        if gone:
            logger.warning("control plane replica(s) %s stopped", sorted(gone))
        me = self.replica_id
        if held and (took_over or gone):
            # Every task whose replica is not live: dead, or from before.
            self._start_recovery(lambda owner: owner not in live)
        if resync:
            # The store was away: what failed here meanwhile is ours to redo.
            self._start_recovery(lambda owner: owner == me)

    def _start_recovery(self, handled_by: Callable[[str | None], bool]) -> None:
        """Recover in the background, so beats go on meanwhile: a long recovery must not
        make this replica look dead. What is asked while one runs runs after it."""
        self._queued.append(handled_by)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(
                self._recover_queued(), name="control-plane-recovery"
            )

    async def _recover_queued(self) -> None:
        while self._queued:
            asked, self._queued = self._queued, []
            try:
                resumed = await self._recover(_any_of(asked))
            except Exception:
                # The store went away again: the next beat after it is back recovers.
                self._resync = True
                logger.warning("recovery failed; it runs again", exc_info=True)
                return
            if resumed:
                logger.info("recovered %d task(s)", resumed)

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store is down: keep trying; recovery resumes with it.
                self._resync = True
                logger.warning("control plane replica beat failed", exc_info=True)

    async def close(self) -> None:
        """Stop beating; give the lease and the liveness back so another takes over at once."""
        self._stopping.set()
        self._wake.set()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._loop is not None:
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        if self._recovering is not None:
            self._recovering.cancel()
            await asyncio.gather(self._recovering, return_exceptions=True)
            self._recovering = None
        try:
            if self.holds_lease:
                await self.store.release_lease(RECOVERY_LEASE, self.replica_id)
            await self.store.forget_replica(self.replica_id)
        except Exception:
            logger.debug("could not sign off from the store", exc_info=True)
        self.holds_lease = False


def _any_of(tests: list[Callable[[str | None], bool]]) -> Callable[[str | None], bool]:
    return lambda owner: any(test(owner) for test in tests)
