"""Driving the local RabbitMQ node from tests: read its topology, stop and start it.

Commands run as subprocesses awaited on the loop, never as blocking calls. They address the
node named in `LLAMA_AGENTS_TEST_RABBITMQ_NODE` (rabbitmqctl's `-n`), else rabbitmqctl's
default node: point it at the node behind `LLAMA_AGENTS_TEST_AMQP_URL` to run the fault
tests against a private node instead of a shared one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

NODE_ENV = "LLAMA_AGENTS_TEST_RABBITMQ_NODE"


def node_args() -> list[str]:
    """`-n <node>` when a node is configured, else nothing (rabbitmqctl's default node)."""
    node = os.environ.get(NODE_ENV, "").strip()
    return ["-n", node] if node else []


class BrokerControlError(RuntimeError):
    """rabbitmqctl failed."""


async def rabbitmqctl(*args: str, timeout: float = 120.0) -> str:
    """Run `rabbitmqctl -q <args>` and return its output."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        *node_args(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise BrokerControlError(f"rabbitmqctl {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


async def list_json(kind: str, *columns: str) -> list[dict[str, Any]]:
    """`rabbitmqctl list_<kind> <columns>` as a list of dicts."""
    out = await rabbitmqctl(f"list_{kind}", *columns, "--formatter", "json")
    rows: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return rows


async def available() -> bool:
    """True when rabbitmqctl exists here and controls a running node."""
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        await rabbitmqctl("status", timeout=30)
    except (BrokerControlError, TimeoutError):
        return False
    return True


async def stop_app() -> None:
    await rabbitmqctl("stop_app")


async def start_app() -> None:
    """Start the RabbitMQ app and wait until it accepts work again."""
    await rabbitmqctl("start_app")
    await rabbitmqctl("await_startup")


async def ensure_running() -> None:
    """Bring the app back whatever state a test left it in."""
    try:
        await start_app()
    except BrokerControlError:
        await rabbitmqctl("await_startup")


async def close_all_connections(reason: str) -> None:
    await rabbitmqctl("close_all_connections", reason)


async def add_user(user: str, password: str) -> None:
    """A user with full rights on vhost `/` (for tests of credentials)."""
    await rabbitmqctl("add_user", user, password)
    await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")


async def change_password(user: str, password: str) -> None:
    await rabbitmqctl("change_password", user, password)


async def delete_user(user: str) -> None:
    await rabbitmqctl("delete_user", user)


async def close_user_connections(user: str, reason: str) -> int:
    """Close the connections of `user` only (other clients of the node keep theirs)."""
    # The JSON formatter prints pids in a form close_connection does not take: use the table.
    out = await rabbitmqctl("--no-table-headers", "list_connections", "pid", "user")
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    pids = [pid for pid, name in rows if name == user]
    for pid in pids:
        await rabbitmqctl("close_connection", pid, reason)
    return len(pids)


async def delete_system(amqp_url: str, exchange: str) -> None:
    """Delete every queue of `exchange`'s system, and the exchange (what processes left)."""
    import aio_pika

    names = [
        row["name"]
        for row in await list_json("queues", "name")
        if row["name"].startswith(f"{exchange}.")
    ]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
        await channel.exchange_delete(exchange)


async def delete_systems(amqp_url: str, exchanges: set[str]) -> int:
    """`delete_system` for many exchanges at once (one listing, one connection); returns
    how many queues went."""
    import aio_pika

    queues = [
        row["name"]
        for row in await list_json("queues", "name")
        if row["name"].split(".", 1)[0] in exchanges
    ]
    found = {row["name"] for row in await list_json("exchanges", "name")} & exchanges
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in sorted(found):
            await channel.exchange_delete(name)
    return len(queues)


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in `queue` (not counting ones held by consumers)."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
    return int(count or 0)


async def queue_counts(amqp_url: str, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of `queue` as its leader says now, or None if it is gone.

    A passive declare answers from the queue itself; rabbitmqctl's counts for quorum queues
    are statistics emitted every few seconds, too stale for a test.
    """
    import aio_pika
    from aiormq.exceptions import ChannelNotFoundEntity

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return None
        result = declared.declaration_result
    return int(result.message_count or 0), int(result.consumer_count or 0)
