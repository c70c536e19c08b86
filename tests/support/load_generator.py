"""A load generator in its own process, as a client of several control-plane replicas.

    python -m tests.support.load_generator --urls URL1,URL2 --count N --rate R --out FILE

Submits N tasks at R per second, round robin over the replicas. When a replica does not
answer, the same task (same id) goes to the next one: a task that the dead replica stored
before it died is then found to exist (409), and counts as submitted. Each submitted id is
written to FILE as it is accepted; the process prints `submitted <n>` as it goes and
`load done <n>` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

from llama_agents import AsyncLlamaAgentsClient
from llama_agents.errors import ControlPlaneUnavailableError, TaskExistsError

QUESTION = "What is the secret fact?"


async def submit(
    clients: list[AsyncLlamaAgentsClient], index: int, task_id: str, service: str | None
) -> None:
    """Create the task on one replica, moving on to the next while they do not answer."""
    for attempt in range(len(clients) * 20):
        client = clients[(index + attempt) % len(clients)]
        try:
            await client.create_task(QUESTION, task_id=task_id, service=service)
            return
        except TaskExistsError:
            return  # a replica stored it before its answer was lost
        except ControlPlaneUnavailableError:
            if (attempt + 1) % len(clients) == 0:
                await asyncio.sleep(0.2)  # every replica refused: back off a little
    raise SystemExit(f"no control plane took task {task_id}")


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--service", default=None)
    args = parser.parse_args(argv)
    clients = [AsyncLlamaAgentsClient(url, timeout=5.0) for url in args.urls.split(",")]
    run = uuid.uuid4().hex[:8]
    with args.out.open("a", encoding="utf-8") as out:
        for index in range(args.count):
            task_id = f"load-{run}-{index:05d}"
            await submit(clients, index, task_id, args.service)
            out.write(task_id + "\n")
            out.flush()
            if (index + 1) % 25 == 0:
                print(f"submitted {index + 1}", flush=True)
            await asyncio.sleep(1 / args.rate)  # the load's pace, not a wait for anything
    for client in clients:
        await client.aclose()
    print(f"load done {args.count}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
