"""A served workflow finds its steps once, not on every run and every step.

The workflows runtime asks `Workflow._get_steps()` for the step table several times per run
(when a run starts, and again each time a step runs), and each time the table is rebuilt
with `inspect.getmembers` over the whole instance, which also evaluates every property. For
a two-step workflow that is 5 lookups per run, ~40 us each; for a `FunctionAgent`, about 7
lookups per run at ~200 us each, a fifth of what a run with an offline LLM costs.

A service serves one workflow instance for its whole life, so `remember_steps` builds the
table once and hands out copies; a step added to the class later (`Workflow.add_step`, which
bumps the class's `_step_functions_version`) rebuilds it. Should a version of the workflows
library no longer look steps up this way, the override is simply never called.
"""

from __future__ import annotations

from typing import Any

from workflows import Workflow

#: The instance attribute that shadows the class's `_get_steps` (a function in the instance's
#: dict is found before the class's method).
_LOOKUP = "_get_steps"


def remember_steps(workflow: Workflow) -> None:
    """Make `workflow._get_steps()` return a copy of a table built once per step version."""
    if _LOOKUP in vars(workflow):
        return  # already remembered (a workflow served twice), or overridden by its owner
    build = getattr(type(workflow), _LOOKUP, None)
    if not callable(build):
        return
    cached: tuple[int, dict[str, Any]] | None = None

    def steps() -> dict[str, Any]:
        nonlocal cached
        version = getattr(type(workflow), "_step_functions_version", 0)
        if cached is None or cached[0] != version:
            cached = (version, build(workflow))
        return dict(cached[1])  # the caller's own dict, as the original returns

    # object.__setattr__: agents are pydantic models too, whose own __setattr__ refuses it.
    object.__setattr__(workflow, _LOOKUP, steps)
