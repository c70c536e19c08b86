"""Before the tests: make sure the local broker takes connections and holds no leftovers.

Tests declare everything on exchanges of their own (`test_<hex>`, benchmarks `bench_<...>`,
demos `llama_agents_demo_<hex>`) and delete it when they end; a run that was killed leaves
its queues behind. Hundreds of
leftover quorum queues exhaust the node's file handles, and then new connections hang. This
deletes every queue named like a test's or a benchmark's, over AMQP when the broker takes
connections, else with rabbitmqctl.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aio_pika

URL = "amqp://guest:guest@127.0.0.1:5672/"
#: Exchanges of tests, benchmarks and `llama-agents demo` runs: each is one run's own.
PREFIXES = ("test_", "bench_", "llama_agents_demo_")


def _names(kind: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith(PREFIXES)]


async def _delete_over_amqp(queues: list[str], exchanges: list[str]) -> bool:
    try:
        connection = await aio_pika.connect(URL, timeout=15)
    except Exception as exc:  # any failure means: use rabbitmqctl
        print(f"tidy_broker: AMQP connect failed ({exc!r}); using rabbitmqctl", flush=True)
        return False
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)
    return True


def _delete_with_rabbitmqctl(queues: list[str]) -> None:
    for name in queues:
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], timeout=60, check=False)


def main() -> int:
    queues, exchanges = _names("queues"), _names("exchanges")
    if queues or exchanges:
        print(f"tidy_broker: deleting {len(queues)} leftover queues, {len(exchanges)} exchanges")
    if not asyncio.run(_delete_over_amqp(queues, exchanges)):
        _delete_with_rabbitmqctl(queues)
        if not asyncio.run(_delete_over_amqp([], exchanges)):
            print("tidy_broker: the broker still refuses AMQP connections", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
