"""Every example runs from a fresh checkout with no API key, as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SECRET = "The secret fact is: A baby llama is called a 'Cria'."

#: What each example must print.
EXPECTED = {
    "agentic_human_local_single.py": "Result: 10 (a canned reply: there was no terminal",
    "agentic_local_single.py": f"Result: {SECRET}",
    "agentic_rag_toolservice.py": "Result: Llamas are domesticated South American camelids",
    "agentic_server.py": f"Result: {SECRET}",
    "agentic_toolservice_local_single.py": f"Result: {SECRET}",
    "pipeline_agent_service_tool_local_single.py": f"Result: {SECRET}",
    "pipeline_human_local_single.py": "Result: 10 (a canned reply from the human route",
    "pipeline_local_single.py": "Result: Did you know? A baby llama is called a 'Cria'.",
    "query_rewrite_rag.py": "Result: According to the documents: A baby llama or alpaca is "
    "called a cria. A cria weighs about 8 kilograms at birth.",
    "workflow_streaming.py": "#3 summarise: writing the summary\n#4 finished: completed\n"
    "Result: baby llamas: summarised from Llamas of the Andes, Camelids, a field guide.",
    "workflow_human_input.py": "After the restart the task is waiting_for_input\n"
    "The first step ran 1 time(s).\n"
    "Result: sent: Dear customer, about the late invoice: it is fixed.",
    "workflow_client.py": "Asked: Send this reply? 'Dear customer, about the late invoice: it "
    "is fixed.' (yes/no)\nEvent: StopEvent\nHandler completed: sent: Dear customer, about the "
    "late invoice: it is fixed.\nThe same run in our API: task completed on replies",
    "dead_letter_replay.py": "Dead letter: inventory, 2 attempts: handler failed: "
    "RuntimeError: the inventory database is down\nReplayed 1; tasks resumed: 1\n"
    "Task completed: 12 blue mugs in stock\nDead letters left: 0\n"
    "Failed tasks counted in /metrics: 1",
    "control_plane_replicas.py": "Services on B: replies\nB streams #1 InputRequiredEvent\n"
    "A stopped\nTask completed through B\nResult: sent: Dear customer, about the late "
    "invoice: it is fixed.",
    "chat_session.py": "Result: in the session the second turn saw 2 user messages, outside it 1",
    "mcp_tools.py": "MCP tools: count_words, shout\nResult: SHOUT: LLAMAS ARE WONDERFUL",
    "mcp_client.py": "Tools: run_task, get_task, list_services, respond\nServices: replies\n"
    'Progress 1: InputRequiredEvent {"prefix": "Send this reply? \'Dear customer, about the '
    "late invoice: it is fixed.' (yes/no)\"}\nTask waiting_for_input; asked: Send this reply? "
    "'Dear customer, about the late invoice: it is fixed.' (yes/no)\nProgress 2: TaskFinished "
    '{"status": "completed", "result": "sent: Dear customer, about the late invoice: it is '
    'fixed.", "error": null}\nResult: sent: Dear customer, about the late invoice: it is '
    "fixed.\nget_task: completed",
    "a2a_server.py": "Agent card: llama-agents, skills ['replies']\n"
    "  working: drafting a reply about the late invoice\n"
    "  input_required: Send this reply? 'Dear customer, about the late invoice: it is fixed.' "
    "(yes/no)\nAnswering yes, in the same task\n  working\n"
    "  artifact: sent: Dear customer, about the late invoice: it is fixed.\n  completed\n"
    "The same task in our API: completed on replies",
    "a2a_remote_agent.py": "Service 'weather': Tells the weather forecast for a city.\n"
    "Remote working: reading the map\nAsked: Which city? Answering: Lisbon\n"
    "Remote working: looking up Lisbon\nRemote artifact chunk: 'Sunny in Lisbon, '\n"
    "Remote artifact chunk: '22 degrees.'\nResult: Sunny in Lisbon, 22 degrees.",
}


def _offline_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"}
        and not k.startswith("LLAMA_AGENTS_LLM_")
    }


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(name: str) -> None:
    script = EXAMPLES / name
    docstring = script.read_text().split('"""')[1]
    assert f"examples/{name}" in docstring, "the docstring says how to run it"
    result = subprocess.run(
        [sys.executable, str(script)],
        stdin=subprocess.DEVNULL,  # the human examples ask on a terminal only
        capture_output=True,
        text=True,
        timeout=180,
        env=_offline_env(),
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr
    assert EXPECTED[name] in result.stdout
