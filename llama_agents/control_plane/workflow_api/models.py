"""The JSON shapes of the workflow-server API, as `llama-agents-client` 0.4 reads them.

They mirror its `protocol` models field by field (same names, same order, same nullability)
without importing it: the client is a development dependency, the control plane is not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

#: A handler's status, as the workflow server names them.
HandlerStatus = Literal["running", "completed", "failed", "cancelled"]


class EventEnvelope(BaseModel):
    """An event as the server writes it: its fields (`value`), class name (`type`), the names
    of its event base classes without itself (`types`, None when none), and its module path
    (`qualified_name`, informational: nothing ever imports it)."""

    value: dict[str, Any]
    qualified_name: str | None
    type: str
    types: list[str] | None


class HandlerData(BaseModel):
    """One handler: its current run (a task), its status and, once completed, its result."""

    handler_id: str
    workflow_name: str
    run_id: str | None
    error: str | None
    result: EventEnvelope | None
    result_unreadable: bool = False
    status: HandlerStatus
    started_at: str
    updated_at: str | None
    completed_at: str | None


class HandlersList(BaseModel):
    handlers: list[HandlerData]
