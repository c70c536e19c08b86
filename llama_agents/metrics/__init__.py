"""Prometheus metrics of a llama-agents system (`GET /metrics`).

Every owner keeps its metrics in a registry of its own (see `_base.py`): a control plane's
task manager (`ControlPlaneMetrics`), a service (`ServiceMetrics`), a message queue
(`FabricMetrics`). The control plane's and every service's HTTP API serve theirs with their
message queue's; `metrics_app` / `metrics_server` serve any sets for a bare consumer.
"""

from llama_agents.metrics._base import MetricSet, metrics_enabled, metrics_open
from llama_agents.metrics.control_plane import ControlPlaneMetrics
from llama_agents.metrics.fabric import FabricMetrics, reason_label
from llama_agents.metrics.http import add_metrics_route, metrics_app, metrics_server, render
from llama_agents.metrics.service import ServiceMetrics

__all__ = [
    "ControlPlaneMetrics",
    "FabricMetrics",
    "MetricSet",
    "ServiceMetrics",
    "add_metrics_route",
    "metrics_app",
    "metrics_enabled",
    "metrics_open",
    "metrics_server",
    "reason_label",
    "render",
]
