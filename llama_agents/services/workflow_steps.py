"""A served workflow finds its steps once, not on every run and every step.

The workflows runtime asks `Workflow._get_steps()` for the step table several times per run
(when a run starts, and again each time a step runs), and each time the table is rebuilt
with `inspect.getmembers` over the whole instance, which also evaluates every property. For
a two-step workflow that is 6 lookups per run, ~40 us each; for a `FunctionAgent`, about 7
lookups per run at ~200 us each, a fifth of what a run with an offline LLM costs.

A service serves one workflow instance for its whole life, so `remember_steps` has that
instance's table built once and handed out as copies; a step added to its class later
(`Workflow.add_step`, which bumps the class's `_step_functions_version`) rebuilds it.

The instances are remembered here, by identity, not on the instances themselves: a copy of
a served workflow (`model_copy` of an agent, `copy.copy`) is another instance, whose steps
are bound to it, and it looks them up as the library does. So that the runtime's calls reach
the table, `Workflow._get_steps` is wrapped once per process; for every instance not
remembered, the wrapper calls the library's own. A subclass that defines its own
`_get_steps` keeps it, uncached.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import MethodType
from typing import Any

from workflows import Workflow

_LOOKUP = "_get_steps"


@dataclass
class _Table:
    owner: weakref.ReferenceType[Workflow]
    version: int = -1
    #: name -> (function, whether to bind it to the workflow). Its methods are kept unbound:
    #: bound, they would hold the workflow, and it would never be collected.
    steps: dict[str, tuple[Any, bool]] | None = None


#: Remembered instances by `id()`; each entry leaves when its workflow is collected.
_tables: dict[int, _Table] = {}
_library_lookup: Any = None


def remember_steps(workflow: Workflow) -> None:
    """Have `workflow`'s step table built once per step version, not on every lookup."""
    if not _wrap_lookup():
        return  # a workflows library that no longer looks steps up this way
    key = id(workflow)
    entry = _tables.get(key)
    if entry is not None and entry.owner() is workflow:
        return  # served twice: one table

    def forget(ref: weakref.ReferenceType[Workflow]) -> None:
        if (current := _tables.get(key)) is not None and current.owner is ref:
            del _tables[key]

    _tables[key] = _Table(owner=weakref.ref(workflow, forget))


def _remembered_lookup(self: Workflow) -> dict[str, Any]:
    entry = _tables.get(id(self))
    if entry is None or entry.owner() is not self:
        return _library_lookup(self)  # type: ignore[no-any-return]
    version = getattr(type(self), "_step_functions_version", 0)
    if entry.steps is None or entry.version != version:
        entry.steps, entry.version = _unbound(_library_lookup(self), self), version
    # The caller's own dict, as the library's lookup returns, its methods bound again.
    return {
        name: MethodType(function, self) if bind else function
        for name, (function, bind) in entry.steps.items()
    }


def _unbound(steps: dict[str, Any], owner: Workflow) -> dict[str, tuple[Any, bool]]:
    return {
        name: (step.__func__, True) if getattr(step, "__self__", None) is owner else (step, False)
        for name, step in steps.items()
    }


def _wrap_lookup() -> bool:
    """Wrap `Workflow._get_steps` once; False if it is not there to wrap."""
    global _library_lookup
    current = Workflow.__dict__.get(_LOOKUP)
    if current is _remembered_lookup:
        return True
    if not callable(current):
        return False
    _library_lookup = current
    setattr(Workflow, _LOOKUP, _remembered_lookup)
    return True
