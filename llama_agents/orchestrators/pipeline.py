"""`PipelineOrchestrator`: runs an explicit `Pipeline` of steps, one service step at a time.

Local steps (functions, routers) run inline until the pipeline reaches a service step,
which goes out as a NEW_TASK message, or its end, which becomes the final answer. The
position, the current value, the pending step and a trace live in the task's JSON state:
a restarted control plane carries on with a new orchestrator, and a router's decision
(perhaps an LLM's) is never asked for twice. `LLMSelector`, the router selector that asks
an LLM, lives here too; the graph's names are re-exported, so one import gives them all.

State layout (`STATE_VERSION` 1)::

    {"version": 1,
     "node": "summarize" | null,    # next node to run, or the pending one; null once done
     "value": "...",                # the value flowing into `node`
     "pending": {"step_id": "...", "service": "..."} | null,
     "failed": {"node": "...", "service": "...", "error": "..."} | null,
     "trace": [{"node": "fetch", "output": "..."}, {"node": "router_1", "route": "math"}]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.tools import BaseTool
from pydantic import BaseModel, Field

from llama_agents.errors import ConfigurationError, OrchestratorError, TaskFailedError
from llama_agents.messages import QueueMessage, TaskDefinition, TaskResult
from llama_agents.orchestrators.base import BaseOrchestrator, final_message, step_message
from llama_agents.orchestrators.pipeline_graph import (
    FunctionStep,
    Pipeline,
    Route,
    RouterStep,
    RouteSelector,
    ServiceStep,
    Step,
    check_template,
)
from llama_agents.orchestrators.service_tool import ServiceTool

__all__ = [
    "FunctionStep",
    "LLMSelector",
    "Pipeline",
    "PipelineOrchestrator",
    "Route",
    "RouteSelector",
    "RouterStep",
    "ServiceStep",
]

STATE_VERSION = 1


class RouteInput(BaseModel):
    """The argument of a route tool; the pipeline passes the current value on unchanged."""

    input: str = Field(description="The input to pass along this route.")


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_SELECTOR_PROMPT = (
    "Pick the one route that best fits the input.\n\nRoutes:\n{routes}\n\nInput:\n{input}"
)
FUNCTION_CALLING_SELECTOR_PROMPT = (
    "Pick the one route that best fits the user's message.\n\nRoutes:\n{routes}\n\n"
    "Call the tool named after the route you pick."
)


@dataclass
class LLMSelector:
    """Lets an LLM pick a route: by function calling if the model can, else by a text answer.

    `prompt` may use `{input}` (the current value) and `{routes}` (one `label: description`
    line per route); a one-line instruction on how to answer is appended.
    """

    llm: LLM
    prompt: str | None = None
    _prompt: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._prompt = self.prompt or DEFAULT_SELECTOR_PROMPT
        check_template(self._prompt, ("input", "routes"), "LLMSelector prompt")

    def check_labels(self, labels: Sequence[str]) -> None:
        """Labels become tool names, which LLM APIs restrict."""
        for label in labels:
            if not _TOOL_NAME.match(label):
                raise ConfigurationError(
                    f"route label {label!r} cannot be an LLM tool name: use letters, digits, "
                    "_ and - only (at most 64)"
                )

    async def select(self, value: str, descriptions: Mapping[str, str]) -> str:
        """The label the LLM chose; its raw answer when that names no route (for the error)."""
        listing = "\n".join(f"- {label}: {text}" for label, text in descriptions.items())
        content = self._prompt.format(input=value, routes=listing)
        labels = list(descriptions)
        llm = self.llm
        if isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model:
            tools = [
                ServiceTool(label, text, fn_schema=RouteInput)
                for label, text in descriptions.items()
            ]
            if self.prompt is None:
                # The routes go in the instructions; the user's turn is the input alone,
                # so the choice is about the input, not about the words of the routes.
                instructions = FUNCTION_CALLING_SELECTOR_PROMPT.format(routes=listing)
                history = [
                    ChatMessage(role=MessageRole.SYSTEM, content=instructions),
                    ChatMessage(role=MessageRole.USER, content=value),
                ]
            else:
                content += "\n\nCall the tool named after the route you pick."
                history = [ChatMessage(role=MessageRole.USER, content=content)]
            response = await llm.achat_with_tools(tools, chat_history=history)
            calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
            for call in calls:
                if call.tool_name in descriptions:
                    return call.tool_name
            text = response.message.content or ""
            return match_label(text, labels) or (calls[0].tool_name if calls else text)
        content += "\n\nAnswer with the label of the route only."
        reply = await llm.achat([ChatMessage(role=MessageRole.USER, content=content)])
        text = reply.message.content or ""
        return match_label(text, labels) or text


def match_label(reply: str, labels: Sequence[str]) -> str | None:
    """The label a free-text reply names: all of it, or the only label mentioned in it."""
    text = reply.strip().strip("`'\".,:;!* \n").lower()
    for label in labels:
        if label.lower() == text:
            return label
    found = [
        label
        for label in labels
        if re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", reply, re.IGNORECASE)
    ]
    return found[0] if len(found) == 1 else None


@dataclass
class _Run:
    """One task's progress through the pipeline; loaded from and dumped to plain JSON."""

    node: str | None
    value: str
    pending: dict[str, str] | None = None
    failed: dict[str, str] | None = None
    trace: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, state: dict[str, Any], start: str, task_input: str) -> _Run:
        if not state:
            return cls(node=start, value=task_input)
        if state.get("version") != STATE_VERSION:
            raise TaskFailedError(
                f"task state has version {state.get('version')!r}; this PipelineOrchestrator "
                f"reads version {STATE_VERSION}"
            )
        return cls(
            node=state["node"],
            value=state["value"],
            pending=dict(state["pending"]) if state.get("pending") else None,
            failed=dict(state["failed"]) if state.get("failed") else None,
            trace=[dict(entry) for entry in state.get("trace", [])],
        )

    def dump(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "node": self.node,
            "value": self.value,
            "pending": self.pending,
            "failed": self.failed,
            "trace": self.trace,
        }


class PipelineOrchestrator(BaseOrchestrator):
    """Sends each task through `pipeline`: services remotely, functions and routers inline.

    Args:
        pipeline: the flow to run (see `Pipeline` and `Pipeline.sequence`).
        max_local_steps: local steps allowed in a row without reaching a service step or the
            end; more means the pipeline is looping, and the task fails.
    """

    def __init__(self, pipeline: Pipeline, *, max_local_steps: int = 100) -> None:
        if not isinstance(pipeline, Pipeline):
            raise ConfigurationError(
                f"PipelineOrchestrator needs a Pipeline, got {type(pipeline).__name__}"
            )
        if max_local_steps < 1:
            raise ConfigurationError(f"max_local_steps must be at least 1, got {max_local_steps}")
        self.pipeline = pipeline
        self.max_local_steps = max_local_steps

    async def get_next_messages(
        self, task_def: TaskDefinition, tools: list[BaseTool], state: dict[str, Any]
    ) -> tuple[list[QueueMessage], dict[str, Any]]:
        run = _Run.load(state, self.pipeline.start, task_def.input)
        if run.failed:
            raise TaskFailedError(
                f"step {run.failed['node']!r} (service {run.failed['service']!r}) failed: "
                f"{run.failed['error']}",
                task_def.task_id,
            )
        if run.pending:
            return [], state  # a service step is still running
        local_steps = 0
        while run.node is not None:
            step = self._step(run.node, task_def)
            if isinstance(step, ServiceStep):
                self._check_registered(run.node, step, tools, task_def)
                step_input = step.render(run.value, task_def.input)
                message = step_message(step.service_name, step_input, task_def)
                run.pending = {
                    "step_id": str(message.data["step_id"]),
                    "service": step.service_name,
                }
                return [message], run.dump()
            if local_steps >= self.max_local_steps:
                raise TaskFailedError(
                    f"{self.max_local_steps} local steps in a row without reaching a service "
                    f"or the end (max_local_steps), last at {run.node!r}: the pipeline loops",
                    task_def.task_id,
                )
            local_steps += 1
            await self._run_local(run, run.node, step, task_def)
        final = final_message(task_def, run.value, data={"trace": run.trace})
        return [final], run.dump()

    async def add_result_to_state(
        self, result: TaskResult, state: dict[str, Any]
    ) -> dict[str, Any]:
        if not state:
            return state  # nothing was sent yet: a stray result
        run = _Run.load(state, self.pipeline.start, "")
        if run.pending is None or run.node is None:
            return state  # nothing is running: a duplicate or stale result
        # A missing step_id comes from a service that does not echo it; the control plane
        # has matched such a result to the one open step already.
        if result.step_id is not None and result.step_id != run.pending["step_id"]:
            return state  # not the step this task waits for: stale or duplicate
        service = run.pending["service"]
        run.pending = None
        if result.error:
            run.failed = {"node": run.node, "service": service, "error": result.error}
            return run.dump()
        run.trace.append({"node": run.node, "output": result.result})
        run.value = result.result
        run.node = self.pipeline.next_node(run.node)
        return run.dump()

    def _step(self, name: str, task_def: TaskDefinition) -> Step:
        step = self.pipeline.nodes.get(name)
        if step is None:
            raise TaskFailedError(
                f"the task is at node {name!r}, which this pipeline does not have "
                "(was the pipeline changed while the task ran?)",
                task_def.task_id,
            )
        return step

    @staticmethod
    def _check_registered(
        name: str, step: ServiceStep, tools: list[BaseTool], task_def: TaskDefinition
    ) -> None:
        """Fail now rather than publish a step no service would ever take."""
        registered = {tool.metadata.name for tool in tools}
        if tools and step.service_name not in registered:
            raise TaskFailedError(
                f"step {name!r} needs service {step.service_name!r}, which is not registered "
                f"(registered: {', '.join(sorted(n for n in registered if n))})",
                task_def.task_id,
            )

    async def _run_local(self, run: _Run, name: str, step: Step, task_def: TaskDefinition) -> None:
        """Run the function or router step `name` and move `run` past it."""
        try:
            if isinstance(step, FunctionStep):
                run.value = await step.run(run.value)
                run.trace.append({"node": name, "output": run.value})
                run.node = self.pipeline.next_node(name)
            elif isinstance(step, RouterStep):
                label = await step.choose(run.value)
                run.trace.append({"node": name, "route": label})
                run.node = self.pipeline.route_target(name, label)
            else:
                raise OrchestratorError(f"unknown kind of step {type(step).__name__}")
        except TaskFailedError as exc:
            raise TaskFailedError(f"step {name!r}: {exc.error}", task_def.task_id) from exc
        except Exception as exc:
            raise TaskFailedError(
                f"step {name!r} raised {type(exc).__name__}: {exc}", task_def.task_id
            ) from exc
