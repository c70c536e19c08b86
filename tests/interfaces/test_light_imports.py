"""The package, the SDK and the CLI's client commands load nothing of the server side.

Each check runs in a fresh interpreter (what is imported is only visible there) and looks at
`sys.modules` afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from llama_index.core.llms import ChatMessage

import llama_agents
from llama_agents import (
    ActionTypes,
    AsyncLlamaAgentsClient,
    QueueMessage,
    TaskDefinition,
    TaskResult,
)
from llama_agents.console.app import COMMANDS
from tests.support.helpers import DEADLINE
from tests.support.systems import System, served_system

#: What a client (the SDK, `llama-agents tasks ...`) must never import.
SERVER_SIDE = ("fastapi", "starlette", "uvicorn", "aio_pika", "aiormq", "llama_index", "textual")

MARKER = "LOADED-MODULES:"


async def loaded_after(code: str) -> tuple[set[str], str]:
    """The top-level modules a fresh interpreter has loaded after running `code`, and what
    `code` printed on stdout."""
    script = (
        "import sys\n"
        f"{code}\n"
        "import json\n"
        f"print({MARKER!r} + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})),"
        " file=sys.stderr)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    line = next(line for line in err.decode().splitlines() if line.startswith(MARKER))
    return set(json.loads(line.removeprefix(MARKER))), out.decode()


def cli_code(*args: str) -> str:
    """Runs `llama-agents <args>` in-process, as its console script does."""
    return (
        "from llama_agents.console import main\n"
        "try:\n"
        f"    main({list(args)!r}, prog_name='llama-agents')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
    )


def assert_none_of(loaded: set[str], forbidden: tuple[str, ...]) -> None:
    assert not loaded & set(forbidden), sorted(loaded & set(forbidden))


# -- the package ------------------------------------------------------------------------------


async def test_import_llama_agents_loads_only_the_package() -> None:
    loaded, _ = await loaded_after("import llama_agents\nassert llama_agents.__version__")
    assert_none_of(loaded, (*SERVER_SIDE, "pydantic", "httpx", "openai"))


def test_every_public_name_resolves() -> None:
    for name in llama_agents.__all__:
        assert getattr(llama_agents, name) is not None, name
    assert set(llama_agents.__all__) <= set(dir(llama_agents))
    # The same objects as in their own modules, not copies.
    from llama_agents.control_plane import TaskRecord, TaskStatus
    from llama_agents.sdk import LlamaAgentsClient

    assert llama_agents.TaskRecord is TaskRecord
    assert llama_agents.TaskStatus is TaskStatus
    assert llama_agents.LlamaAgentsClient is LlamaAgentsClient


def test_an_unknown_name_is_an_attribute_error_naming_the_module() -> None:
    with pytest.raises(AttributeError, match="module 'llama_agents' has no attribute 'NoSuch'"):
        _ = llama_agents.NoSuch  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from llama_agents import NoSuch  # type: ignore[attr-defined]  # noqa: F401


async def test_subpackages_are_attributes_as_when_everything_was_imported() -> None:
    code = "import llama_agents\nassert llama_agents.sdk.LlamaAgentsClient"
    loaded, _ = await loaded_after(code)
    assert_none_of(loaded, SERVER_SIDE)


async def test_llama_index_workflows_stays_importable_beside_us() -> None:
    loaded, _ = await loaded_after("import llama_agents.workflows")
    assert "workflows" in loaded


# -- the SDK ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["llama_agents.sdk", "llama_agents.messages", "llama_agents.messages.records"]
)
async def test_the_sdk_and_the_wire_models_load_no_server_side(module: str) -> None:
    loaded, _ = await loaded_after(f"import {module}")
    assert_none_of(loaded, SERVER_SIDE)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    async with served_system(tmp_path) as served:
        yield served


async def test_tasks_commands_load_no_server_side(system: System) -> None:
    """`tasks list` and `tasks get` read real records (with a chat history) from a control plane."""
    async with AsyncLlamaAgentsClient(system.url) as client:
        task_id = await client.create_task("hello")
        step = TaskDefinition.model_validate((await system.next_step()).data)
        history = [ChatMessage(role="assistant", content="hi")]
        result = TaskResult(task_id=task_id, step_id=step.step_id, result="hi", history=history)
        await system.worker.queue.publish(
            QueueMessage(
                type="control_plane",
                action=ActionTypes.COMPLETED_TASK,
                data=result.model_dump(mode="json"),
            )
        )
        await client.wait_for_result(task_id, timeout=DEADLINE)

    url = ["--control-plane-url", system.url]
    loaded, out = await loaded_after(cli_code("tasks", "list", *url))
    assert task_id in out and "completed" in out
    assert_none_of(loaded, SERVER_SIDE)

    loaded, out = await loaded_after(cli_code("tasks", "get", task_id, "--json", *url))
    record = json.loads(out)
    assert record["steps"][0]["result"]["history"][0]["blocks"][0]["text"] == "hi"
    assert_none_of(loaded, SERVER_SIDE)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["tasks"],
        ["tasks", "list"],
        ["tasks", "events"],
        ["sessions", "create"],
        ["services", "get"],
        ["serve"],
        ["serve", "service"],
        ["serve", "control-plane"],
        ["demo"],
        ["monitor"],
    ],
    ids=lambda command: " ".join(command) or "llama-agents",
)
async def test_help_loads_only_what_it_shows(command: list[str]) -> None:
    loaded, out = await loaded_after(cli_code(*command, "--help"))
    assert out.startswith("Usage: llama-agents")
    assert_none_of(loaded, (*SERVER_SIDE, "openai"))
    if not command:
        # Listing the commands imports none of them.
        assert_none_of(loaded, ("pydantic", "httpx"))


def test_the_command_table_says_what_each_command_says() -> None:
    """`llama-agents --help` shows the table's line; it must be the command's own."""
    for name, lazy in COMMANDS.items():
        command = lazy.load()
        assert command.name == name
        assert command.get_short_help_str(limit=1000) == lazy.short_help, name
