"""A served process tunes Python's garbage collector once it is ready (start-up frozen, the
young generation collected at 50,000); a process that only embeds llama-agents keeps its own.
Each case runs in a fresh interpreter: the collector's state is the whole process's."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.support.helpers import DEADLINE

SCRIPT = """
import asyncio, gc, json, logging, sys, tempfile
from pathlib import Path
from llama_agents import ComponentService, ControlPlaneServer, PipelineOrchestrator, Pipeline
from llama_agents import ServerLauncher, ServiceStep, SimpleMessageQueue
from llama_agents.launchers.process import serve_service

async def upper(text: str) -> str:
    return text.upper()

async def served() -> None:
    ready = asyncio.Event()

    class Ready(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "ready at" in record.getMessage():
                ready.set()

    logging.getLogger("llama_agents.process").addHandler(Ready())
    logging.getLogger("llama_agents.process").setLevel(logging.INFO)
    queue = SimpleMessageQueue()
    service = ComponentService(upper, queue, "Upper-cases.", service_name="upper", port=0)
    serving = asyncio.create_task(serve_service(service, port=0, register=False))
    # The tuning follows the "ready" line with no await in between.
    await asyncio.wait_for(ready.wait(), 30)
    report()
    serving.cancel()

async def embedded() -> None:
    queue = SimpleMessageQueue(port=0)
    with tempfile.TemporaryDirectory() as state:
        control_plane = ControlPlaneServer(
            queue,
            PipelineOrchestrator(Pipeline.sequence(ServiceStep("upper"))),
            port=0,
            state_store=Path(state) / "cp.sqlite3",
        )
        service = ComponentService(upper, queue, "Upper-cases.", service_name="upper", port=0)
        launcher = ServerLauncher([service], control_plane, queue)
        serving = asyncio.create_task(launcher.alaunch_servers())
        await launcher.wait_until_ready(30)
        report()
        launcher.shutdown()
        await serving

def report() -> None:
    state = {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}
    print("RESULT " + json.dumps(state), file=sys.stderr, flush=True)

asyncio.run(served() if sys.argv[1] == "served" else embedded())
"""


async def collector_state(mode: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        mode,
        env=dict(os.environ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE * 2):
        _, err = await process.communicate()
    lines = [line for line in err.decode().splitlines() if line.startswith("RESULT ")]
    assert lines, err.decode()
    state: dict[str, object] = json.loads(lines[0].removeprefix("RESULT "))
    return state


async def test_a_served_process_freezes_its_start_up_and_collects_young_objects_less_often() -> (
    None
):
    from llama_agents._runtime import SERVING_GC_THRESHOLDS

    state = await collector_state("served")
    assert state["threshold"] == list(SERVING_GC_THRESHOLDS)
    assert isinstance(state["frozen"], int) and state["frozen"] > 50_000


async def test_an_application_that_embeds_the_servers_keeps_its_collector() -> None:
    state = await collector_state("embedded")
    assert state == {"threshold": [700, 10, 10], "frozen": 0}
