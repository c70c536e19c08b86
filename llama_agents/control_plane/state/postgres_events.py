"""Task event logs in PostgreSQL: gap-free appends from many writers, and their removal.

Each task with a log has a row in `event_logs` holding its newest sequence. An append locks
that row (FOR UPDATE, by an upsert that also makes it) for the rest of its transaction, so
appends to one task run one after the other, across processes: each numbers on from the
sequence the previous one committed, with no gap, and sees every dedupe key committed before
it (the unique constraint on (task_id, dedupe_key) backs that up). Appends to different
tasks do not wait on each other.

Lock order, everywhere: a task's `tasks` row before its `event_logs` row, so two
transactions never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_agents.control_plane.state.base import EventRow, NewEvent, StoreChange
from llama_agents.control_plane.state.postgres_feed import encode_change


async def append(
    c: Any, s: str, task_id: str, events: Sequence[NewEvent], *, channel: str, origin: str
) -> tuple[list[EventRow], dict[str, int]]:
    """Append to task `task_id`'s log in schema `s` (quoted), inside the caller's transaction
    on connection `c`. Returns the events appended, and the sequence of each dedupe key
    among them; an event whose key is logged already is skipped."""
    if not events:
        return [], {}
    # Lock the log's row for the rest of the transaction; a concurrent appender waits here,
    # then reads the sequence this one committed.
    last = await c.fetchval(
        f"INSERT INTO {s}.event_logs (task_id, last_sequence) VALUES ($1, 0)"
        f" ON CONFLICT (task_id) DO UPDATE SET last_sequence = {s}.event_logs.last_sequence"
        " RETURNING last_sequence",
        task_id,
    )
    keys = [e.dedupe_key for e in events if e.dedupe_key is not None]
    known: set[str] = set()
    if keys:  # a statement after the lock: it sees what the previous appender committed
        found = await c.fetch(
            f"SELECT dedupe_key FROM {s}.events WHERE task_id = $1 AND dedupe_key = ANY($2)",
            task_id,
            keys,
        )
        known = {r[0] for r in found}
    appended: list[EventRow] = []
    sequences: dict[str, int] = {}
    fresh_keys: list[str | None] = []
    for event in events:
        sequence = last + len(appended) + 1
        if event.dedupe_key is not None:
            if event.dedupe_key in known:
                continue
            known.add(event.dedupe_key)
            sequences[event.dedupe_key] = sequence
        appended.append(EventRow(task_id, sequence, event.body))
        fresh_keys.append(event.dedupe_key)
    if not appended:
        return [], {}
    newest = appended[-1].sequence
    await c.execute(
        f"WITH added AS (INSERT INTO {s}.events (task_id, sequence, dedupe_key, body)"
        " SELECT $1, e.sequence, e.dedupe_key, e.body"
        " FROM unnest($2::bigint[], $3::text[], $4::jsonb[]) AS e(sequence, dedupe_key, body))"
        f" UPDATE {s}.event_logs SET last_sequence = $5 WHERE task_id = $1"
        " RETURNING pg_notify($6, $7)",
        task_id,
        [e.sequence for e in appended],
        fresh_keys,
        [e.body for e in appended],
        newest,
        channel,
        encode_change(StoreChange("events", task_id, newest, origin)),
    )
    return appended, sequences


async def delete_logs(c: Any, s: str, task_ids: list[str], *, channel: str, origin: str) -> None:
    """The event logs and checkpoints of tasks just deleted in this transaction, and the
    notices of their deletion."""
    if not task_ids:
        return
    # The log's row first: an append in flight commits before its events are deleted.
    await c.execute(f"DELETE FROM {s}.event_logs WHERE task_id = ANY($1::text[])", task_ids)
    await c.execute(
        f"WITH events AS (DELETE FROM {s}.events WHERE task_id = ANY($1::text[])),"
        f" checkpoints AS (DELETE FROM {s}.checkpoints WHERE task_id = ANY($1::text[]))"
        " SELECT pg_notify($2, notice) FROM unnest($3::text[]) AS notice",
        task_ids,
        channel,
        [encode_change(StoreChange("task", task_id, None, origin)) for task_id in task_ids],
    )
