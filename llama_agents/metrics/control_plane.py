"""Metrics of a control plane: tasks (created, ended, how long), orchestrator decisions,
runs waiting for input, event-stream subscribers, the orchestrator's LLM tokens.

Labels: `service` (the service a task named; empty when the orchestrator routes it),
`orchestrator` (the orchestrator's class when it routes the task; empty otherwise),
`status` (completed, failed, cancelled). No task ids.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram

from llama_agents.messages.records import TaskRecord, TaskStatus
from llama_agents.metrics._base import DURATION_BUCKETS, MetricSet
from llama_agents.metrics.llm import current_sink, install_token_handler
from llama_agents.metrics.service import TokenCounter, token_counter

#: The `service` label of the orchestrator's own LLM tokens.
ORCHESTRATOR_CALLER = "control_plane"


class ControlPlaneMetrics(MetricSet):
    """What one control plane (its task manager) did; served at its `/metrics`."""

    def __init__(
        self,
        orchestrator: str,
        *,
        task_stream_readers: Callable[[], int] = lambda: 0,
        change_stream_readers: Callable[[], int] = lambda: 0,
        enabled: bool | None = None,
    ) -> None:
        super().__init__(enabled)
        self.orchestrator = orchestrator
        r = self.registry
        self._created = Counter(
            "llama_agents_tasks_created",
            "Tasks created.",
            ["service", "orchestrator"],
            registry=r,
        )
        self._finished = Counter(
            "llama_agents_tasks_finished",
            "Tasks that ended, by status (completed, failed, cancelled).",
            ["service", "orchestrator", "status"],
            registry=r,
        )
        self._duration = Histogram(
            "llama_agents_task_duration_seconds",
            "Seconds from a task's creation to its end, by status.",
            ["service", "orchestrator", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._decisions = Histogram(
            "llama_agents_orchestrator_decision_duration_seconds",
            "Seconds one orchestrator decision took, until its steps were saved and sent.",
            ["orchestrator"],
            buckets=DURATION_BUCKETS,
            registry=r,
        ).labels(orchestrator)
        self._waiting = Gauge(
            "llama_agents_runs_waiting_for_input",
            "Tasks whose run waits for input (a person), in the store: every replica of a "
            "control plane sharing one store reports the same number.",
            registry=r,
        )
        subscribers = Gauge(
            "llama_agents_event_stream_subscribers",
            "Open event streams: a task's events (task) or every change (changes).",
            ["stream"],
            registry=r,
        )
        subscribers.labels("task").set_function(task_stream_readers)
        subscribers.labels("changes").set_function(change_stream_readers)
        self.tokens = TokenCounter(token_counter(r), ORCHESTRATOR_CALLER)
        self._labels: dict[str | None, tuple[str, str]] = {}
        if self.enabled:
            install_token_handler()

    def _task_labels(self, record: TaskRecord) -> tuple[str, str]:
        labels = self._labels.get(record.service)
        if labels is None:
            labels = (record.service, "") if record.service else ("", self.orchestrator)
            self._labels[record.service] = labels
        return labels

    def task_created(self, record: TaskRecord) -> None:
        if self.enabled:
            self._created.labels(*self._task_labels(record)).inc()

    def task_finished(self, record: TaskRecord) -> None:
        """`record` was saved finished for the first time (once per task)."""
        if not self.enabled:
            return
        labels = (*self._task_labels(record), record.status.value)
        self._finished.labels(*labels).inc()
        seconds = (record.updated_at - record.created_at).total_seconds()
        self._duration.labels(*labels).observe(max(seconds, 0.0))

    def timed_decisions(
        self, decide: Callable[[str], Awaitable[None]]
    ) -> Callable[[str], Awaitable[None]]:
        """`decide`, timed; the orchestrator's LLM tokens in it count for the control plane."""
        if not self.enabled:
            return decide
        observe = self._decisions.observe
        tokens = self.tokens

        async def timed(task_id: str) -> None:
            token = current_sink.set(tokens)
            started = time.perf_counter()
            try:
                await decide(task_id)
            finally:
                observe(time.perf_counter() - started)
                current_sink.reset(token)

        return timed

    async def refresh(self, counts: Callable[[], Awaitable[dict[str, int]]]) -> None:
        """Before a scrape: read what only the store knows (tasks waiting for input)."""
        if self.enabled:
            self._waiting.set((await counts()).get(TaskStatus.WAITING_FOR_INPUT.value, 0))
