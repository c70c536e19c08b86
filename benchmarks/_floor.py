"""The floor: the least a mesh on this project's stack costs per run, for `workflow_runs.py`.

`workflow_runs.py --system floor` serves the same workflow to the same client with the same
libraries the framework is built on, used as cheaply as we know how, doing only the work a
durable, streamed run cannot do without:

* the control plane: one FastAPI route on uvicorn (httptools, uvloop), `POST /tasks/stream`,
  which saves the task, publishes its step and streams the run's events back as server-sent
  events the SDK reads; one consumer of the replicas' messages, which appends their events to
  the task's log, saves checkpoints and the result, then acknowledges; SQLite (WAL,
  `synchronous=NORMAL`) in one thread with group commits, as the framework's store;
* a replica: one consumer (prefetch = the runs it holds), each step one run of the workflow,
  its context checkpointed with the workflows JSON serializer after the first step, with the
  events streamed so far, and the result published with the rest; the step acknowledged
  last. Every message persistent, on quorum queues, confirmed by the broker. Its workflow's
  step table is built once (`remember_steps`, as a `WorkflowService` does), not on every
  step as the library does and the bare run does.

Nothing else: no registry, orchestrator, deadlines, retries, dead letters, redelivery
checks, sessions, human input, cancels, metrics, tracing or logging, and no validation of
what the replicas send. So the floor is below what the framework must do, never above it:
the framework's CPU above the floor is what its own code adds; the floor's above the bare
run is what the stack itself costs, whoever builds on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import aio_pika
from _common import announce, serve_until, stop_event
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel
from workflows import Context, Workflow
from workflows.context.serializers import JsonSerializer
from workflows.events import InternalDispatchEvent, StepState, StepStateChanged, StopEvent

from llama_agents._runtime import tune_gc_for_serving
from llama_agents._serving import HttpServer
from llama_agents.message_queues.rabbitmq.topology import queue_name
from llama_agents.services.workflow_steps import remember_steps

#: The routing key (and queue) of the control plane, as the framework names it.
CONTROL_PLANE = "control_plane"
QUORUM = {"x-queue-type": "quorum"}

Op = Callable[[sqlite3.Connection], None]


class GroupCommitStore:
    """SQLite in one thread: writes queued while a commit runs go in the next one together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="floor-sqlite")
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Op, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, body TEXT)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS events (task_id TEXT, sequence INTEGER, body TEXT,"
            " PRIMARY KEY (task_id, sequence))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS checkpoints (task_id TEXT PRIMARY KEY, body TEXT)")
        return db

    async def write(self, op: Op) -> None:
        """Run `op` in the next commit; return once it is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((op, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await loop.run_in_executor(self._executor, self._commit, [op for op, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)

    def _commit(self, ops: list[Op]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                op(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._db is not None:
            self._db.close()
        self._executor.shutdown(wait=False)


class NewTask(BaseModel):
    """The body the SDK's `stream_task` posts (what the floor reads of it)."""

    input: str
    service: str | None = None
    publish_result: bool = True


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _sse(sequence: int, kind: str, data: dict[str, Any]) -> str:
    """One event as the SDK reads it (a `TaskEvent`, framed as a server-sent event)."""
    event = {"sequence": sequence, "type": kind, "data": data, "created_at": _now()}
    return f"id: {sequence}\ndata: {json.dumps(event)}\n\n"


async def control_plane(args: argparse.Namespace, service: str) -> None:
    """The floor's control plane: serve until SIGTERM; says READY with its URL."""
    from fastapi import FastAPI

    from llama_agents.control_plane.streams import EventStreamResponse, LastChunk

    stop = stop_event(args.profile)
    store = GroupCommitStore(os.environ["LLAMA_AGENTS_STATE_PATH"])
    await store.open()
    connection = await aio_pika.connect_robust(args.url)
    publishing = await connection.channel(publisher_confirms=True)
    exchange = await publishing.declare_exchange(
        args.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    consuming = await connection.channel(publisher_confirms=False)
    await consuming.set_qos(prefetch_count=args.cp_prefetch or 100)
    inbox = await consuming.declare_queue(
        queue_name(args.exchange, CONTROL_PLANE), durable=True, arguments=QUORUM
    )
    await inbox.bind(args.exchange, routing_key=CONTROL_PLANE)
    #: Each streaming task's frames, with True on its last.
    streams: dict[str, asyncio.Queue[tuple[str, bool]]] = {}
    sequences: dict[str, int] = {}

    app = FastAPI()

    async def frames(task_id: str, queue: asyncio.Queue[tuple[str, bool]]) -> AsyncIterator[str]:
        try:
            while True:
                text, last = await queue.get()
                if last:
                    yield LastChunk(text)
                    return
                yield text
        finally:
            streams.pop(task_id, None)

    @app.post("/tasks/stream", status_code=201)
    async def create_task_streaming(task: NewTask) -> EventStreamResponse:
        task_id = str(uuid.uuid4())
        record = json.dumps({"task_id": task_id, "input": task.input, "status": "running"})
        await store.write(
            lambda db: db.execute("INSERT INTO tasks VALUES (?, ?)", (task_id, record))
        )
        queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        streams[task_id] = queue
        sequences[task_id] = 0
        step = json.dumps({"task_id": task_id, "input": task.input}).encode()
        await exchange.publish(
            aio_pika.Message(
                step,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=task.service or service,
        )
        return EventStreamResponse(
            frames(task_id, queue),
            status_code=201,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-task-id": task_id},
        )

    async def on_message(message: AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        task_id: str = body["task_id"]
        sequence = sequences.get(task_id, 0)
        rows: list[tuple[str, int, str]] = []
        text: list[str] = []
        events: list[tuple[str, dict[str, Any]]] = [(e["type"], e["data"]) for e in body["events"]]
        final = body["kind"] == "result"
        error = body.get("error")
        status = "failed" if error else "completed"
        if final:
            finished = {"status": status, "result": body["result"], "error": error}
            events.append(("TaskFinished", finished))
        for kind, data in events:
            sequence += 1
            frame = _sse(sequence, kind, data)
            rows.append((task_id, sequence, frame))
            text.append(frame)
        sequences[task_id] = sequence
        if final:
            record = {
                "task_id": task_id,
                "status": status,
                "result": body["result"],
                "error": error,
            }
            saved = ("UPDATE tasks SET body = ? WHERE task_id = ?", (json.dumps(record), task_id))
        else:
            checkpoint = json.dumps(body["checkpoint"])
            saved = ("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (task_id, checkpoint))

        def op(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
            db.execute(*saved)

        await store.write(op)
        if final:
            sequences.pop(task_id, None)
        queue = streams.get(task_id)
        if queue is not None:
            queue.put_nowait(("".join(text), final))
        await message.ack()

    await inbox.consume(on_message)
    # Served as the framework serves its apps (the same uvicorn settings and socket options).
    server = HttpServer(app, host="127.0.0.1", port=0)
    serving = asyncio.create_task(server.serve())

    async def url() -> str:
        return f"http://127.0.0.1:{await server.wait_started(60.0)}"

    try:
        await serve_until(serving, url(), stop)
    finally:
        server.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
        with contextlib.suppress(Exception):
            await inbox.delete(if_unused=False, if_empty=False)
        with contextlib.suppress(Exception):
            await exchange.delete()
        await connection.close()
        await store.close()


async def replica(args: argparse.Namespace, workflow: Workflow, service: str) -> None:
    """One floor replica: run each step's workflow, checkpoint after the first step, publish
    the result, acknowledge; serve until SIGTERM; says READY once consuming."""
    stop = stop_event(args.profile)
    remember_steps(workflow)
    serializer = JsonSerializer()
    connection = await aio_pika.connect_robust(args.url)
    publishing = await connection.channel(publisher_confirms=True)
    exchange = await publishing.declare_exchange(
        args.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    consuming = await connection.channel(publisher_confirms=False)
    await consuming.set_qos(prefetch_count=args.max_runs)
    steps = await consuming.declare_queue(
        queue_name(args.exchange, service), durable=True, arguments=QUORUM
    )
    await steps.bind(args.exchange, routing_key=service)
    stop_names = {str(StopEvent)}  # how the runtime names a step's output

    async def publish(body: dict[str, Any]) -> None:
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=CONTROL_PLANE,
        )

    async def on_step(message: AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        try:
            await run(body)
        except Exception as exc:  # the client hears of it at once, not after its timeout
            failure = {"kind": "result", "task_id": body["task_id"], "events": []}
            await publish({**failure, "result": None, "error": f"{type(exc).__name__}: {exc}"})
        await message.ack()

    async def run(body: dict[str, Any]) -> None:
        task_id = body["task_id"]
        ctx = Context(workflow, serializer=serializer)
        handler = workflow.run(ctx=ctx, input=body["input"])
        outbox: list[dict[str, Any]] = []
        async for event in handler.stream_events(expose_internal=True):
            if isinstance(event, StepStateChanged):
                if (
                    event.step_state is StepState.NOT_RUNNING
                    and event.output_event_name not in stop_names
                ):
                    checkpoint = ctx.to_dict(serializer=serializer)
                    update = {"kind": "update", "task_id": task_id, "checkpoint": checkpoint}
                    await publish({**update, "events": outbox})
                    outbox = []
            elif not isinstance(event, InternalDispatchEvent | StopEvent):
                outbox.append({"type": type(event).__name__, "data": event.model_dump(mode="json")})
        result = await handler
        await publish({"kind": "result", "task_id": task_id, "events": outbox, "result": result})

    tag = await steps.consume(on_step)
    tune_gc_for_serving()
    announce(f"{service} floor replica")
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await steps.cancel(tag)
        with contextlib.suppress(Exception):
            await steps.delete(if_unused=False, if_empty=False)
        await connection.close()
