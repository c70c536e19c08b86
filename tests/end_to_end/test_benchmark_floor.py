"""The workflow benchmark serves the same runs with the framework and with its floor.

`benchmarks/workflow_runs.py --system floor` measures what the stack alone costs (see
benchmarks/_floor.py); its figures mean something only if the floor serves the same
workload: every run completes with the right result and streams the same events to the
SDK's client as it does through the framework.
"""

from __future__ import annotations

import pytest

from tests.support.helpers import DEADLINE
from tests.support.processes import run_benchmark

pytestmark = pytest.mark.rabbitmq


@pytest.mark.parametrize("system", ["framework", "floor"])
async def test_the_floor_serves_the_same_runs_as_the_framework(amqp_url: str, system: str) -> None:
    lines = await run_benchmark(
        "workflow_runs.py",
        f"--url={amqp_url}",
        f"--system={system}",
        "--runs=12",
        "--in-flight=4",
        "--warmup=2",
        "--llm-delay=0.05",
        "--skip-bare",
        timeout=DEADLINE * 12,
    )
    mesh = next(line for line in lines if line["case"] == "mesh")
    cpu = next(line for line in lines if line["case"] == "cpu")
    assert mesh["system"] == cpu["system"] == system
    assert (mesh["errors"], mesh["wrong"]) == (0, 0), mesh.get("first_error")
    # Two `Progress` events and the terminal `TaskFinished`, for every run.
    assert mesh["events_per_run"] == 3.0
    assert cpu["control_plane_cpu_ms_per_run"] > 0
    assert cpu["replicas_cpu_ms_per_run"] > 0
