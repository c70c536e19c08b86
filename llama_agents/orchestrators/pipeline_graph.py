"""The explicit flow a `PipelineOrchestrator` runs: named steps joined by edges and routers.

`QueryPipeline` left llama-index, so llama-agents describes explicit flows with this small
graph instead. A `ServiceStep` is remote (a registered service does the work); a
`FunctionStep` or a `RouterStep` runs inside the orchestrator. Every node has a unique name,
so a task's position is plain JSON that another process can resume from.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias, runtime_checkable

from llama_agents.errors import ConfigurationError, TaskFailedError

TextFn: TypeAlias = Callable[[str], str | Awaitable[str]]
SelectorFn: TypeAlias = Callable[[str, list[str]], str | Awaitable[str]]


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Await async callables; run sync ones in a thread so they cannot stall the event loop."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    ):
        result = await fn(*args)
    else:
        result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):  # e.g. functools.partial of an async function
        result = await result
    return result


def check_template(template: str, fields: Sequence[str], what: str) -> None:
    """Fail at construction, not mid-task, on a template `str.format` cannot fill."""
    try:
        template.format(**dict.fromkeys(fields, ""))
    except (KeyError, IndexError, ValueError) as exc:
        allowed = ", ".join("{" + f + "}" for f in fields)
        raise ConfigurationError(
            f"{what} {template!r} cannot be formatted ({exc!r}): it may only use {allowed}; "
            "write literal braces as {{ and }}"
        ) from exc


class Step:
    """A node of a pipeline; `name` is how edges, routes and stored task state refer to it."""

    def __init__(self, name: str | None) -> None:
        if name is not None and not name:
            raise ConfigurationError("a step name must not be empty")
        self.name = name

    def default_name(self) -> str | None:
        """The node name when none was given; `None` lets the pipeline number it."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ServiceStep(Step):
    """A step a registered service does: the orchestrator sends it over the message queue."""

    def __init__(
        self, service_name: str, *, name: str | None = None, input_template: str | None = None
    ) -> None:
        super().__init__(name)
        if not service_name:
            raise ConfigurationError("ServiceStep needs a service name")
        if input_template is not None:
            check_template(input_template, ("input", "task_input"), "input_template")
        self.service_name = service_name
        self.input_template = input_template

    def default_name(self) -> str:
        return self.name or self.service_name

    def render(self, value: str, task_input: str) -> str:
        """The service's input: the current value, or the template filled with it."""
        if self.input_template is None:
            return value
        return self.input_template.format(input=value, task_input=task_input)


class FunctionStep(Step):
    """A local `str -> str` transformation (sync or async), run inside the orchestrator."""

    def __init__(self, fn: TextFn, *, name: str | None = None) -> None:
        super().__init__(name)
        if not callable(fn):
            raise ConfigurationError(f"FunctionStep needs a callable, got {fn!r}")
        self.fn = fn

    def default_name(self) -> str:
        return self.name or str(getattr(self.fn, "__name__", type(self.fn).__name__))

    async def run(self, value: str) -> str:
        output = await call_maybe_async(self.fn, value)
        if not isinstance(output, str):
            raise TaskFailedError(f"returned {type(output).__name__}, not str")
        return output


@dataclass(frozen=True)
class Route:
    """Where a router label leads (a step run inline, or a node's name), and when to take it."""

    target: Step | str
    description: str = ""


@runtime_checkable
class RouteSelector(Protocol):
    """A selector that needs each route's description, not just its label (an LLM does).

    `LLMSelector` (in `llama_agents.orchestrators.pipeline`) is one.
    """

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise `ConfigurationError` for labels this selector cannot offer."""

    async def select(self, value: str, descriptions: Mapping[str, str]) -> str:
        """The chosen label (or the raw answer, shown in the error if it names no route)."""


class RouterStep(Step):
    """Picks one route for the current value; the value itself passes on unchanged.

    `routes` maps a label to a `Route`, a step (an inline branch) or a node's name.
    `selector` is `(value, labels) -> label` (sync or async) or a `RouteSelector` such as
    `LLMSelector`, which also sees the routes' descriptions. An answer that names no route
    takes `default` if set, else fails the task.
    """

    def __init__(
        self,
        routes: Mapping[str, Route | Step | str],
        selector: SelectorFn | RouteSelector,
        *,
        name: str | None = None,
        default: str | None = None,
    ) -> None:
        super().__init__(name)
        if not routes:
            raise ConfigurationError("RouterStep needs at least one route")
        self.routes: dict[str, Route] = {
            label: target if isinstance(target, Route) else Route(target)
            for label, target in routes.items()
        }
        for label, route in self.routes.items():
            if not isinstance(label, str) or not label:
                raise ConfigurationError(f"route labels must be non-empty strings, got {label!r}")
            if not isinstance(route.target, Step | str):
                raise ConfigurationError(
                    f"route {label!r} leads to {route.target!r}: use a step or a node's name"
                )
        if default is not None and default not in self.routes:
            raise ConfigurationError(f"default route {default!r} is not one of {list(self.routes)}")
        if isinstance(selector, RouteSelector):
            selector.check_labels(list(self.routes))
        elif not callable(selector):
            raise ConfigurationError(f"selector must be a function or LLMSelector: {selector!r}")
        self.selector = selector
        self.default = default

    async def choose(self, value: str) -> str:
        """The label to follow for `value`; asks the selector exactly once."""
        labels = list(self.routes)
        answer: Any
        if isinstance(self.selector, RouteSelector):
            descriptions = {
                label: route.description or f"Take the {label!r} route."
                for label, route in self.routes.items()
            }
            answer = await self.selector.select(value, descriptions)
        else:
            answer = await call_maybe_async(self.selector, value, labels)
        if isinstance(answer, str) and answer in self.routes:
            return answer
        if self.default is not None:
            return self.default
        raise TaskFailedError(
            f"the selector answered {_clip(answer)!r}, which is none of the routes {labels}"
        )


def _clip(answer: object, limit: int = 200) -> object:
    """Long LLM replies shortened for an error message."""
    if isinstance(answer, str) and len(answer) > limit:
        return answer[:limit] + "..."
    return answer


@dataclass
class _Layout:
    """Every node by name, with each router's label -> node name and its inline branches."""

    nodes: dict[str, Step] = field(default_factory=dict)
    routes: dict[str, dict[str, str]] = field(default_factory=dict)
    inline: dict[str, list[str]] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)
    routers: int = 0

    @classmethod
    def of(cls, steps: Sequence[Step]) -> _Layout:
        layout = cls()
        layout.top = [layout._add(step) for step in steps]
        return layout

    def _add(self, step: Step) -> str:
        if not isinstance(step, Step):
            raise ConfigurationError(f"{step!r} is not a pipeline step")
        name = step.default_name()
        if name is None:
            self.routers += 1
            name = f"router_{self.routers}"
        if name in self.nodes:
            raise ConfigurationError(
                f"two steps are named {name!r}; give one of them another name with name=..."
            )
        self.nodes[name] = step
        if isinstance(step, RouterStep):
            self.routes[name], self.inline[name] = {}, []
            for label, route in step.routes.items():
                if isinstance(route.target, Step):
                    self.routes[name][label] = self._add(route.target)
                    self.inline[name].append(self.routes[name][label])
                else:
                    self.routes[name][label] = route.target
        return name


class Pipeline:
    """A graph of named steps: `edges` maps a node to the next one; routers follow routes.

    A node without an edge ends the pipeline. Inline router branches are nodes too (named
    like any step), so edges may start from them.
    """

    def __init__(
        self,
        nodes: Sequence[Step],
        edges: Mapping[str, str] | None = None,
        start: str | None = None,
    ) -> None:
        if not nodes:
            raise ConfigurationError("a pipeline needs at least one step")
        layout = _Layout.of(nodes)
        self._nodes = layout.nodes
        self._routes = layout.routes
        self._edges = dict(edges or {})
        self.start = layout.top[0] if start is None else start
        known = f"known nodes: {', '.join(self._nodes)}"
        for source, target in self._edges.items():
            if source not in self._nodes or target not in self._nodes:
                unknown = source if source not in self._nodes else target
                raise ConfigurationError(
                    f"edge {source!r} -> {target!r} names unknown node {unknown!r}; {known}"
                )
            if source in self._routes:
                raise ConfigurationError(
                    f"edge {source!r} -> {target!r} leaves a router: routers continue along "
                    "their routes; put the edge on a route's target instead"
                )
        for router, routes in self._routes.items():
            for label, target in routes.items():
                if target not in self._nodes:
                    raise ConfigurationError(
                        f"route {label!r} of {router!r} leads to unknown node {target!r}; {known}"
                    )
        if self.start not in self._nodes:
            raise ConfigurationError(f"start node {self.start!r} is unknown; {known}")

    @classmethod
    def sequence(cls, *steps: Step) -> Pipeline:
        """A chain of steps; a router's inline branches continue with the step after it."""
        layout = _Layout.of(steps)
        edges: dict[str, str] = {}

        def link(name: str, after: str | None) -> None:
            if name in layout.routes:
                for branch in layout.inline[name]:
                    link(branch, after)
            elif after is not None:
                edges[name] = after

        for index, name in enumerate(layout.top):
            link(name, layout.top[index + 1] if index + 1 < len(layout.top) else None)
        return cls(steps, edges)

    @property
    def nodes(self) -> Mapping[str, Step]:
        return MappingProxyType(self._nodes)

    def next_node(self, name: str) -> str | None:
        """The node after `name` (not a router), or `None` where the pipeline ends."""
        return self._edges.get(name)

    def route_target(self, router: str, label: str) -> str:
        """The node that router `router` goes to for `label`."""
        return self._routes[router][label]
