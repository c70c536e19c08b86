"""`GET /workflows/{name}/representation`: the workflow's graph.

The service's description carries its step graph under `graph` when its codec puts it there
(`workflows.representation.get_workflow_representation(workflow)`, dumped as JSON). Without
it the control plane, which has no workflow classes, answers the graph of what it does know:
the workflow's events as event nodes, with no steps and no edges.
"""

from __future__ import annotations

from typing import Any

from llama_agents.control_plane.workflow_api.envelopes import WorkflowShape


def workflow_graph(
    shape: WorkflowShape, description: dict[str, Any], about: str | None = None
) -> dict[str, Any]:
    """The graph the description carries, else its events' (`about`: the service's own
    description, standing in for the workflow's docstring)."""
    graph = description.get("graph")
    if isinstance(graph, dict) and "nodes" in graph and "edges" in graph:
        return graph
    events = {shape.start.type: shape.start, **shape.events, shape.stop.type: shape.stop}
    nodes = [
        {
            "id": event.type,
            "label": event.type,
            "node_type": "event",
            "event_type": event.type,
            "event_types": event.types or [event.type],
            "event_schema": event.schema,
            "produced_by": [],
        }
        for event in events.values()
    ]
    return {"name": shape.name, "description": about, "nodes": nodes, "edges": []}
