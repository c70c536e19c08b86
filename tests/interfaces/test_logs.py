"""The log formats and the secret filter, line by line (the whole system: test_json_logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from llama_agents.errors import ConfigurationError
from llama_agents.logs import configure_logging, redact, set_log_context
from llama_agents.logs import setup as log_setup


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.StringIO, logging.Logger]]:
    monkeypatch.setenv("LLAMA_AGENTS_API_KEY", "k3y-abcdefghijkl")
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    before = log_setup._handler
    handler = configure_logging(logging.INFO, format="json", stream=stream)
    try:
        yield stream, logging.getLogger("llama_agents.test")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        log_setup._handler = before
        if before is not None:
            root.addHandler(before)


def test_redact_hides_url_passwords_bearer_tokens_and_keys() -> None:
    text = (
        "amqp://bob:s3cret@broker:5672/ postgresql://u:pw@db/x Bearer abc.def "
        "api_key=XYZ123 sk-abcdefghijklmnopqrstuv"
    )
    clean = redact(text, secrets=[])
    for secret in ("s3cret", ":pw@", "abc.def", "XYZ123", "sk-abcdefghijklmnopqrstuv"):
        assert secret not in clean
    assert "amqp://bob:***@broker:5672/" in clean
    assert redact("the key is hunter2hunter2", secrets=["hunter2hunter2"]) == "the key is ***"


def test_json_lines_carry_context_extra_and_redacted_tracebacks(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = captured
    with set_log_context(task_id="t-1", service="svc"):
        logger.info("to %s with %s", "amqp://u:password1@h/", "k3y-abcdefghijkl")
        try:
            raise RuntimeError("line one\nline two amqp://u:password1@h/")
        except RuntimeError:
            logger.exception("failed", extra={"step_id": "s-9"})
    logger.warning("outside")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "to amqp://u:***@h/ with ***"
    assert first["task_id"] == "t-1" and first["service"] == "svc" and first["level"] == "INFO"
    assert first["logger"] == "llama_agents.test" and first["time"].endswith("+00:00")
    assert second["step_id"] == "s-9" and second["task_id"] == "t-1"
    assert "line two" in second["exception"] and "password1" not in second["exception"]
    assert "task_id" not in third


def test_text_is_the_default_and_tags_known_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_AGENTS_LOG_FORMAT", raising=False)
    stream = io.StringIO()
    before = log_setup._handler
    handler = configure_logging(stream=stream)
    try:
        with set_log_context(task_id="t-2"):
            logging.getLogger("llama_agents.test").warning("hello")
    finally:
        logging.getLogger().removeHandler(handler)
        log_setup._handler = before
    line = stream.getvalue().strip()
    assert line.endswith("WARNING llama_agents.test: hello [task=t-2]")


def test_an_unknown_format_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_AGENTS_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigurationError, match="LLAMA_AGENTS_LOG_FORMAT"):
        configure_logging()
