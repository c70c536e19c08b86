"""The lines `tasks.py` prints after measuring several systems in one run: what tracing,
metrics, or another store and more control planes cost, next to the first system.

Each takes the systems' figures (`Measured`: the CPU line and the headline figures) and
returns one line (`tasks.py` adds its ``bench``). Where a system was measured several times
(``--rounds``), comparisons use medians: this machine's speed drifts between runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from _systems import Layout


@dataclass
class Measured:
    """One system's figures that comparisons use."""

    cpu: dict[str, Any]
    tasks_per_s: float
    idle_p50_ms: float
    idle_cross_p50_ms: float | None


def observability_cost(
    measured: dict[str, dict[str, Any] | None],
    sample_ratio: float,
    rounds: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """What metrics, then metrics and tracing, cost: the system's CPU ms per task each way
    (the median runs); with every round's CPU lines, also each round's overhead against the
    same round's system without either, and their median (``paired_overhead_pct``)."""
    figures = {
        name: None if cpu is None else cpu["system_cpu_ms_per_task"]
        for name, cpu in measured.items()
    }
    base = figures["none"]
    line: dict[str, Any] = {
        "case": "observability_cost",
        "sample_ratio": sample_ratio,
        "cpu_ms_per_task": figures,
        "targets_overhead_pct_max": {"metrics": 5, "metrics_and_tracing": 10},
    }
    for name in ("metrics", "metrics_and_tracing"):
        value = figures[name]
        line[f"{name}_overhead_pct"] = (
            round((value - base) / base * 100.0, 1) if base and value is not None else None
        )
    if rounds:
        paired: dict[str, Any] = {}
        for name in ("metrics", "metrics_and_tracing"):
            pairs = zip(rounds.get("none", []), rounds.get(name, []), strict=False)
            overheads = _overheads(list(pairs))
            if overheads:
                paired[name] = {
                    "rounds_overhead_pct": [round(value, 1) for value in overheads],
                    "paired_overhead_pct": round(statistics.median(overheads), 1),
                }
        if paired:
            line["paired"] = paired
    return line


def _overheads(rounds: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[float]:
    """Each (without, with) round's overhead in percent of the system's CPU per task."""
    return [
        (b["system_cpu_ms_per_task"] - a["system_cpu_ms_per_task"])
        / a["system_cpu_ms_per_task"]
        * 100.0
        for a, b in rounds
        if a["system_cpu_ms_per_task"]
    ]


def median_run(runs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The CPU line of the median run (by the system's CPU per task)."""
    if not runs:
        return None
    ordered = sorted(runs, key=lambda cpu: cpu["system_cpu_ms_per_task"])
    return ordered[len(ordered) // 2]


def tracing_cost(
    off: dict[str, Any],
    on: dict[str, Any],
    sample_ratio: float,
    rounds: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
) -> dict[str, Any]:
    """Tracing's cost: the system's CPU ms per task, off and on (the median runs); with the
    rounds' (off, on) pairs, also each round's overhead and their median, which a drift of
    the machine's speed between rounds moves less than the medians' comparison."""
    before, after = off["system_cpu_ms_per_task"], on["system_cpu_ms_per_task"]
    line = {
        "case": "tracing_cost",
        "sample_ratio": sample_ratio,
        "off_cpu_ms_per_task": before,
        "on_cpu_ms_per_task": after,
        "overhead_pct": round((after - before) / before * 100.0, 1) if before else None,
        "target_overhead_pct_max": 10,
    }
    paired = _overheads(rounds)
    if paired:
        line["rounds_overhead_pct"] = [round(value, 1) for value in paired]
        line["paired_overhead_pct"] = round(statistics.median(paired), 1)
    return line


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


#: The figures `store_comparison` gives each configuration (medians over its rounds).
COMPARED_CPU = (
    "system_cpu_ms_per_task",
    "control_planes_cpu_ms_per_task",
    "per_control_plane_cpu_ms_per_task",
    "services_cpu_ms_per_task",
    "postgres_cpu_ms_per_task",
    "postgres_backends_cpu_ms_per_task",
    "system_and_postgres_backends_cpu_ms_per_task",
    "broker_cpu_ms_per_task",
)


def store_comparison(
    layouts: list[Layout], runs: dict[str, list[Measured]], settings: dict[str, Any]
) -> dict[str, Any]:
    """Each configuration's tasks/s, CPU per task and idle p50 (medians over its rounds),
    and its CPU against the single control plane on SQLite."""
    configs: dict[str, Any] = {}
    for layout in layouts:
        measured = runs[layout.name]
        entry: dict[str, Any] = {**layout.tags(), "runs": len(measured)}
        entry["tasks_per_s"] = _median([m.tasks_per_s for m in measured])
        entry["idle_p50_ms"] = _median([m.idle_p50_ms for m in measured])
        entry["idle_cross_p50_ms"] = _median([m.idle_cross_p50_ms for m in measured])
        for name in COMPARED_CPU:
            entry[name] = _median([m.cpu[name] for m in measured])
        configs[layout.name] = entry
    base = configs.get(layouts[0].name, {})

    def against_base(entry: dict[str, Any], name: str, base_name: str) -> float | None:
        value, reference = entry.get(name), base.get(base_name)
        return round(value / reference, 2) if value is not None and reference else None

    ratios = {
        name: {
            "system": against_base(entry, "system_cpu_ms_per_task", "system_cpu_ms_per_task"),
            "control_planes": against_base(
                entry, "control_planes_cpu_ms_per_task", "control_planes_cpu_ms_per_task"
            ),
            "per_control_plane": against_base(
                entry, "per_control_plane_cpu_ms_per_task", "per_control_plane_cpu_ms_per_task"
            ),
            "services": against_base(entry, "services_cpu_ms_per_task", "services_cpu_ms_per_task"),
            # SQLite's work is in the control plane's own process: PostgreSQL's is not.
            "system_and_postgres_backends": against_base(
                entry, "system_and_postgres_backends_cpu_ms_per_task", "system_cpu_ms_per_task"
            ),
        }
        for name, entry in configs.items()
        if name != layouts[0].name
    }
    return {
        "case": "store_comparison",
        **settings,
        "configs": configs,
        "cpu_ratio_vs_sqlite": ratios,
    }
