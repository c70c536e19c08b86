"""A2A is an extra: without the SDK the control plane serves everything else and `A2AService`
says what to install; `LLAMA_AGENTS_A2A` turns the control plane's A2A face off, or requires it."""

from __future__ import annotations

import sys

import pytest

from llama_agents import A2AService, ConfigurationError, ControlPlaneServer, SimpleMessageQueue
from llama_agents.control_plane import a2a_server
from tests.support.orchestrators import FanOutOrchestrator


def a2a_paths(monkeypatch: pytest.MonkeyPatch, setting: str | None) -> set[str]:
    if setting is None:
        monkeypatch.delenv("LLAMA_AGENTS_A2A", raising=False)
    else:
        monkeypatch.setenv("LLAMA_AGENTS_A2A", setting)
    control_plane = ControlPlaneServer(SimpleMessageQueue(), FanOutOrchestrator([]))
    paths = {getattr(route, "path", "") for route in control_plane.app.routes}
    return {p for p in paths if p in ("/a2a", "/.well-known/agent-card.json")}


def test_the_control_plane_serves_a2a_when_the_sdk_is_installed_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both = {"/a2a", "/.well-known/agent-card.json"}
    assert a2a_paths(monkeypatch, None) == both
    assert a2a_paths(monkeypatch, "true") == both
    assert a2a_paths(monkeypatch, "false") == set()
    with pytest.raises(ConfigurationError, match="use auto, true or false"):
        a2a_paths(monkeypatch, "sometimes")


def test_without_the_sdk_a2a_is_left_out_or_asked_for_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(a2a_server, "a2a_sdk_installed", lambda: False)
    assert a2a_paths(monkeypatch, None) == set(), "auto: the rest is served as before"
    with pytest.raises(ConfigurationError, match=r"pip install 'llama-agents\[a2a\]'"):
        a2a_paths(monkeypatch, "true")

    monkeypatch.setitem(sys.modules, "a2a.client", None)  # its import fails
    with pytest.raises(ConfigurationError, match=r"pip install 'llama-agents\[a2a\]'"):
        A2AService("http://127.0.0.1:1", SimpleMessageQueue(), "remote")
