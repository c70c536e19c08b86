"""The installed package is ours, even beside llama-index-workflows' `llama_agents` folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def test_import_from_outside_the_checkout_finds_our_package(tmp_path: Path) -> None:
    code = (
        "import llama_agents, llama_agents.workflows;"
        "print(llama_agents.__file__);"
        "print(hasattr(llama_agents, 'RabbitMQMessageQueue'));"
        "print(llama_agents.workflows.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    path, has_queue, workflows = result.stdout.split()
    assert Path(path).resolve() == CHECKOUT / "llama_agents" / "__init__.py"
    assert has_queue == "True"
    assert workflows == "llama_agents.workflows"


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "llama-agents"
    result = subprocess.run(
        [str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "Usage" in result.stdout
