"""Metrics of one service: its steps (count, duration, in flight) and its LLM tokens."""

from __future__ import annotations

import time
from contextvars import Token
from types import TracebackType

from prometheus_client import Counter, Gauge, Histogram

from llama_agents.metrics._base import DURATION_BUCKETS, MetricSet
from llama_agents.metrics.llm import TokenSink, current_sink, install_token_handler


def token_counter(registry: object) -> Counter:
    """`llama_agents_llm_tokens_total{service, model, kind}` in `registry`."""
    return Counter(
        "llama_agents_llm_tokens",
        "LLM tokens the provider reported, by who called it, the model and input/output.",
        ["service", "model", "kind"],
        registry=registry,  # type: ignore[arg-type]
    )


class TokenCounter:
    """A `TokenSink` adding to `llama_agents_llm_tokens_total` for one caller."""

    def __init__(self, counter: Counter, service: str) -> None:
        self.counter = counter
        self.service = service

    def add_tokens(self, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self.counter.labels(self.service, model, "input").inc(prompt)
        if completion:
            self.counter.labels(self.service, model, "output").inc(completion)


class _Step:
    """Times one handled message and counts it in flight; LLM calls in it count for us."""

    __slots__ = ("_metrics", "_started", "_token")

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._started = 0.0
        self._token: Token[TokenSink | None] | None = None

    def __enter__(self) -> None:
        m = self._metrics
        if m.enabled:
            m._in_flight.inc()
            self._token = current_sink.set(m.tokens)
            self._started = time.perf_counter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        m = self._metrics
        if m.enabled:
            m._duration.observe(time.perf_counter() - self._started)
            m._in_flight.dec()
            if self._token is not None:
                current_sink.reset(self._token)


class ServiceMetrics(MetricSet):
    """What one service did. Created by the service; its HTTP API serves it at `/metrics`."""

    def __init__(self, service: str, enabled: bool | None = None) -> None:
        super().__init__(enabled)
        self.service = service
        r = self.registry
        steps = Counter(
            "llama_agents_steps",
            "Steps a service answered, by outcome (completed, failed).",
            ["service", "outcome"],
            registry=r,
        )
        self._completed = steps.labels(service, "completed")
        self._failed = steps.labels(service, "failed")
        self._duration = Histogram(
            "llama_agents_step_duration_seconds",
            "Seconds a service spent on one message (a step, a tool call).",
            ["service"],
            buckets=DURATION_BUCKETS,
            registry=r,
        ).labels(service)
        self._in_flight = Gauge(
            "llama_agents_steps_in_flight",
            "Messages (steps, tool calls) a service is handling now.",
            ["service"],
            registry=r,
        ).labels(service)
        self.tokens = TokenCounter(token_counter(r), service)
        if self.enabled:
            install_token_handler()

    def step(self) -> _Step:
        """`with metrics.step(): ...` around handling one message."""
        return _Step(self)

    def answered(self, failed: bool) -> None:
        """A step's result went out (`failed`: it carries an error)."""
        if self.enabled:
            (self._failed if failed else self._completed).inc()
