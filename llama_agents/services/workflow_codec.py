"""A workflow's events and context as JSON, without ever importing a class a payload names.

Everything that crosses a process about a run goes through here: the start event built from a
task, events sent into a run (looked up by name among the events the workflow declares), the
events it streams, its result, and its context checkpoints. Checkpoints use the workflows
JSON serializer restricted to known classes (`allowed_types`), plus the agent's chat memory,
which the workflows serializer skips, as plain chat messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from llama_index.core.agent.workflow import workflow_events as agent_events
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms import ChatResponse
from llama_index.core.memory import BaseMemory, ChatMemoryBuffer
from llama_index.core.tools import ToolOutput, ToolSelection
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from workflows import Workflow
from workflows.context.serializers import JsonSerializer
from workflows.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)

from llama_agents.errors import (
    ConfigurationError,
    EventRejectedError,
    UnknownEventTypeError,
    WorkflowInputError,
)
from llama_agents.messages import TaskDefinition
from llama_agents.messages.runs import StreamedEvent

#: Classes an agent's context holds besides its events (scratchpads, tool calls, outputs).
_AGENT_STATE_TYPES: tuple[type[Any], ...] = (
    ChatMessage,
    ChatResponse,
    ToolSelection,
    ToolOutput,
    agent_events.AgentInput,
    agent_events.AgentOutput,
    agent_events.AgentSetup,
    agent_events.AgentStream,
    agent_events.AgentWorkflowStartEvent,
    agent_events.ToolCall,
    agent_events.ToolCallResult,
)

#: Marks a chat memory in a checkpoint (the workflows serializer cannot encode one).
_MEMORY_MARKER = "__llama_agents_memory"


logger = logging.getLogger("llama_agents.services.workflow")


class CheckpointSerializer(JsonSerializer):
    """The workflows JSON serializer, limited to known classes, that also keeps chat memory.

    A memory cannot be read synchronously in general, so `remember()` is given its messages
    (read with `aget_all()`) before `Context.to_dict()` runs; restored, it is a
    `ChatMemoryBuffer` with those messages and the same token limit.
    """

    def __init__(self, allowed_types: Iterable[type[Any]]) -> None:
        super().__init__(allowed_types=list(allowed_types))
        self._memories: dict[int, tuple[BaseMemory, list[ChatMessage]]] = {}

    def remember(self, memory: BaseMemory, messages: list[ChatMessage]) -> None:
        self._memories[id(memory)] = (memory, messages)

    def forget(self) -> None:
        self._memories.clear()

    def serialize_value(self, value: Any) -> Any:
        if isinstance(value, BaseMemory):
            known = self._memories.get(id(value))
            if known is None:
                if not isinstance(value, ChatMemoryBuffer):
                    raise ConfigurationError(
                        f"cannot checkpoint a {type(value).__name__} memory that was not read first"
                    )
                messages = value.get_all()
            else:
                messages = known[1]
            return {
                _MEMORY_MARKER: True,
                "token_limit": getattr(value, "token_limit", None),
                "messages": [m.model_dump(mode="json") for m in messages],
            }
        return super().serialize_value(value)

    def deserialize_value(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get(_MEMORY_MARKER):
            messages = [ChatMessage.model_validate(m) for m in data.get("messages", [])]
            limit = data.get("token_limit")
            if isinstance(limit, int):
                return ChatMemoryBuffer.from_defaults(chat_history=messages, token_limit=limit)
            return ChatMemoryBuffer.from_defaults(chat_history=messages)
        return super().deserialize_value(data)


def event_types(cls: type[Any]) -> list[str]:
    """The event class and its event base classes by name, most specific first."""
    names = []
    for base in cls.__mro__:
        if base is Event or base is BaseModel or base is object:
            break
        if issubclass(base, Event):
            names.append(base.__name__)
    return names


def qualified_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def to_json(value: Any) -> Any:
    """A value as plain JSON: pydantic models by their fields (an event's free-form fields,
    which workflows keep apart in `_data`, beside its declared ones); anything else that JSON
    cannot hold as text."""
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", exclude={"_data"})
        extra = getattr(value, "_data", None)
        if isinstance(extra, dict) and extra:
            dumped.pop("_data", None)
            dumped.update(to_jsonable_python(extra, fallback=str))
        return dumped
    return to_jsonable_python(value, fallback=str)


class WorkflowCodec:
    """Everything about one workflow that is turned into or read from JSON."""

    def __init__(
        self,
        workflow: Workflow,
        *,
        additional_events: Iterable[type[Event]] = (),
        serializable_types: Iterable[type[Any]] = (),
        text_field: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.start_event_class: type[StartEvent] = workflow.start_event_class
        self.stop_event_class: type[Any] = workflow.stop_event_class
        #: How the runtime names a step's output (`str(type(event))`) when it ends the run.
        self.stop_event_names = frozenset(
            str(cls)
            for cls in {StopEvent, self.stop_event_class, *workflow.events}
            if isinstance(cls, type) and issubclass(cls, StopEvent)
        )
        accepted: dict[str, type[Event]] = {}
        declared: list[type[Event]] = [
            *workflow.events,
            *additional_events,
            InputRequiredEvent,
            HumanResponseEvent,
        ]
        for cls in declared:
            other = accepted.get(cls.__name__)
            if other is not None and other is not cls:
                raise ConfigurationError(
                    f"the workflow declares two events named {cls.__name__!r} "
                    f"({qualified_name(other)} and {qualified_name(cls)}); rename one"
                )
            accepted[cls.__name__] = cls
        #: The events a run can be sent, by class name.
        self.events = accepted
        self.serializer = CheckpointSerializer(
            [*accepted.values(), StartEvent, StopEvent, *_AGENT_STATE_TYPES, *serializable_types]
        )
        #: The start event field a task's text input goes to: `user_msg` for agents (and for
        #: any workflow an `AgentService` serves), else `input`.
        is_agent = issubclass(self.start_event_class, agent_events.AgentWorkflowStartEvent)
        self.text_field = text_field or ("user_msg" if is_agent else "input")

    # -- in ---------------------------------------------------------------------------

    def start_event(self, task: TaskDefinition) -> StartEvent:
        """The run's start event: the task's `start_event` fields, else its input as text.

        A plain `StartEvent` gets `input=<text>`, an agent `user_msg=<text>` (`text_field`);
        a start event with other required fields needs them in `start_event`.
        """
        cls = self.start_event_class
        if task.start_event is not None:
            try:
                return cls(**task.start_event)  # free-form fields too, as `run(**kwargs)`
            except ValidationError as exc:
                raise WorkflowInputError(
                    f"start_event does not fit {cls.__name__}: {_first_error(exc)}"
                ) from None
        try:
            return cls(**{self.text_field: task.input})
        except ValidationError as exc:
            raise WorkflowInputError(
                f"{cls.__name__} needs {', '.join(_required(cls)) or 'other fields'}: "
                f"send them as start_event ({_first_error(exc)})"
            ) from None

    def decode_event(self, type_name: str, data: dict[str, Any]) -> Event:
        """An event sent into a run, looked up by name among the workflow's events."""
        cls = self.events.get(type_name)
        if cls is None:
            raise UnknownEventTypeError(
                f"{type_name!r} is not an event of this workflow; it accepts "
                f"{', '.join(sorted(self.events))}"
            )
        try:
            return cls(**data)  # free-form fields too, as events are built in code
        except ValidationError as exc:
            raise EventRejectedError(
                f"{type_name} fields are invalid: {_first_error(exc)}"
            ) from None

    # -- out --------------------------------------------------------------------------

    def encode_event(self, event: Event, key: str) -> StreamedEvent:
        data = to_json(event)
        return StreamedEvent(
            key=key,
            type=type(event).__name__,
            types=event_types(type(event)),
            data=data if isinstance(data, dict) else {"value": data},
            qualified_name=qualified_name(type(event)),
        )

    def encode_result(self, result: Any) -> tuple[str, Any]:
        """A run's result as (text for `TaskResult.result`, JSON for `TaskResult.data`)."""
        if isinstance(result, agent_events.AgentOutput):
            return str(result.response.content or ""), to_json(result)
        if isinstance(result, StopEvent) and type(result) is not StopEvent:
            value = to_json(result)
            return json.dumps(value), value
        if isinstance(result, str):
            return result, result
        value = to_json(result)
        return (value if isinstance(value, str) else json.dumps(value)), value

    def describe(self) -> dict[str, Any]:
        """What the control plane needs to validate starts and inputs without the classes."""
        return {
            "start_event": {
                "type": self.start_event_class.__name__,
                "schema": _schema(self.start_event_class),
            },
            "stop_event": {
                "type": self.stop_event_class.__name__,
                "schema": _schema(self.stop_event_class),
            },
            "events": [
                {"type": name, "types": event_types(cls), "schema": _schema(cls)}
                for name, cls in sorted(self.events.items())
            ],
            **self._graph(),
        }

    def _graph(self) -> dict[str, Any]:
        """The step graph (what the workflow-server API's `/representation` serves); left out
        when the workflow's cannot be drawn."""
        from workflows.representation import get_workflow_representation

        try:
            graph = get_workflow_representation(self.workflow)
            return {"graph": graph.model_dump(mode="json")}
        except Exception as exc:  # a drawing is never worth a service that does not start
            logger.warning("no step graph for %s: %s", type(self.workflow).__name__, exc)
            return {}


def _schema(cls: type[Any]) -> dict[str, Any]:
    try:
        schema: dict[str, Any] = cls.model_json_schema()
    except Exception:  # a field pydantic cannot describe: accept any object
        return {"type": "object", "title": cls.__name__}
    return schema


def _required(cls: type[BaseModel]) -> Iterator[str]:
    for name, field in cls.model_fields.items():
        if field.is_required():
            yield name


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
