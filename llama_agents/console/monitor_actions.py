"""Answering a workflow run that waits for a person, from the monitor.

The answer goes through the control plane (`POST /tasks/{id}/events` with a
`HumanResponseEvent`), which stores it and hands it to whichever replica holds the run, or
resumes the run if none does. What came of it is an `Answered`, which the state turns into the
status line: a refusal is a line to read, never an exception out of the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llama_agents.errors import LlamaAgentsError, TaskFinishedError, TaskNotFoundError
from llama_agents.messages.records import EventSent


class Responder(Protocol):
    """What answering needs of the SDK's async client."""

    async def respond(self, task_id: str, text: str) -> EventSent:
        """Send `text` as the `HumanResponseEvent` the task's run waits for."""
        ...


@dataclass(frozen=True)
class Answered:
    """What came of an answer.

    `sent`: the control plane took it. Otherwise `problem` says why not, and `final` whether
    trying again could help (False: the control plane was unreachable, say) or not (the task
    finished, or is unknown).
    """

    task_id: str
    sent: bool
    problem: str = ""
    final: bool = False


async def answer_task(client: Responder, task_id: str, text: str) -> Answered:
    """Send `text` as the answer the task's run waits for; never raises for a refusal."""
    try:
        await client.respond(task_id, text)
    except TaskFinishedError:
        return Answered(task_id, False, "it has already finished; the answer was not sent", True)
    except TaskNotFoundError:
        return Answered(task_id, False, "the control plane does not know it", True)
    except LlamaAgentsError as exc:
        return Answered(task_id, False, str(exc) or type(exc).__name__)
    except Exception as exc:  # whatever it was, the monitor says so and stays up
        return Answered(task_id, False, f"{type(exc).__name__}: {exc}")
    return Answered(task_id, True)
