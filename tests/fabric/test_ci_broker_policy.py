"""With no broker, broker tests skip on a laptop and fail in CI, never silently pass."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

PROBE = """
import pytest

@pytest.mark.rabbitmq
async def test_needs_broker(rabbitmq_factory):
    queue = await rabbitmq_factory()
    await queue.declare_queue("x")
"""


def _run(tmp_path: Path, ci: str, source: str = PROBE) -> subprocess.CompletedProcess[str]:
    tests = Path(__file__).resolve().parent
    # A name of its own: under `pytest -n 2` another worker may run a probe at the same time.
    probe = tests / f"_probe_broker_policy_{uuid.uuid4().hex[:8]}_test.py"
    probe.write_text(source)
    env = {
        **os.environ,
        "CI": ci,
        "LLAMA_AGENTS_TEST_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "PATH": os.environ.get("PATH", ""),
    }
    # Hide docker so testcontainers is not tried.
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "docker" not in p)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", str(probe), "-q", "-p", "no:cacheprovider"],
            cwd=tests.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        probe.unlink()


def test_missing_broker_fails_in_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode != 0, result.stdout
    assert "CI=true: broker tests must run" in result.stdout


def test_missing_broker_skips_locally(tmp_path: Path) -> None:
    result = _run(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


def test_a_broker_test_without_the_marker_is_refused(tmp_path: Path) -> None:
    # Without the marker, `pytest -m "not rabbitmq"` would still try to reach a broker.
    result = _run(tmp_path, "", PROBE.replace("@pytest.mark.rabbitmq\n", ""))
    assert result.returncode != 0, result.stdout
    assert "not marked rabbitmq" in result.stderr and "test_needs_broker" in result.stderr
