"""What every set of metrics shares: its own registry, the on/off switch, the buckets.

Each owner (a control plane's task manager, a service, a message queue) holds one `MetricSet`
with a `CollectorRegistry` of its own, not prometheus_client's process-wide default: several
systems in one process (a notebook, a test suite) then never collide on a name, and one
system's counters can be read exactly. A scrape renders the owner's sets together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from llama_agents._settings import env_str

#: Seconds: a step or a task, from milliseconds (an echo) to minutes (an agent, a person).
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
)  # fmt: skip
#: Seconds: a broker's publisher confirm, normally well under a millisecond to a few.
CONFIRM_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def metrics_enabled() -> bool:
    """`LLAMA_AGENTS_METRICS` (default on): off, the hooks do nothing and no `/metrics` is
    served. It exists to measure what metrics cost; leave it on."""
    return env_str("METRICS", "1").strip().lower() not in _FALSE


def metrics_open(explicit: bool | None = None) -> bool:
    """Whether `/metrics` answers without the API key: the argument, else
    `LLAMA_AGENTS_METRICS_OPEN` (default no). For a scraper on a private network."""
    if explicit is not None:
        return explicit
    return env_str("METRICS_OPEN", "").strip().lower() in _TRUE


class MetricSet:
    """A registry of one owner's metrics; `enabled` False makes its hooks no-ops."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = metrics_enabled() if enabled is None else enabled
        self.registry = CollectorRegistry(auto_describe=True)

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class Union:
    """Several sets seen as one registry (what `generate_latest` reads)."""

    def __init__(self, sets: Iterable[MetricSet]) -> None:
        self.sets = [s for s in sets if s.enabled]

    def collect(self) -> Iterator[Metric]:
        for metric_set in self.sets:
            yield from metric_set.collect()
