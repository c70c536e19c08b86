"""Receives every final result (the `human` queue) and appends it to a JSON-lines file.

The file is `LLAMA_AGENTS_RESULTS_FILE` (default `results.jsonl`).
"""

import json
import os

from llama_agents import CallableMessageConsumer, QueueMessage, TaskResult


def append_result(message: QueueMessage) -> None:
    """Runs in a worker thread (a plain function), so the file write never blocks the loop."""
    result = TaskResult.model_validate(message.data)
    path = os.environ.get("LLAMA_AGENTS_RESULTS_FILE", "results.jsonl")
    line = json.dumps({"task_id": result.task_id, "result": result.result, "error": result.error})
    with open(path, "a", encoding="utf-8") as results:
        results.write(line + "\n")
        results.flush()
        os.fsync(results.fileno())


def build_consumer() -> CallableMessageConsumer:
    return CallableMessageConsumer(handler=append_result, message_type="human")
