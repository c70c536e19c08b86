"""The README's "Workflows as services" block, run as written, defaults included."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT, offline_env


def _block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match is not None, f"no python block under {section!r}"
    return match.group(1)


def test_the_workflows_block_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "workflows_block.py"
    script.write_text(_block("Workflows as services"))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # its control plane keeps its state under ./.llama_agents/
        env=offline_env({}),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "1 Progress {'note': \"shouting 'hello'\"}", result.stdout
    assert lines[1].startswith("2 TaskFinished {") and "'completed'" in lines[1]
    assert lines[-1] == "HELLO"
