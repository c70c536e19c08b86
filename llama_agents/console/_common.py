"""What the `tasks` and `services` commands share: connection options, output.

Failures need nothing here: the root group turns any error into one `Error:` line
(`_failures`). The SDK is imported when a command connects, so `--help` does not load it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from llama_agents.console._failures import fail as fail
from llama_agents.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from llama_agents.sdk import LlamaAgentsClient

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_CONTROL_PLANE_URL = "http://127.0.0.1:8000"

#: Exit status of a command whose task has not finished yet (a script may try again later).
EXIT_NOT_FINISHED = 2

#: The widest a table cell gets before it is cut with an ellipsis.
MAX_CELL = 48


def client_options(command: Callable[P, R]) -> Callable[P, R]:
    """Adds `--control-plane-url` and `--api-key`, both also read from the environment."""
    command = click.option(
        "--api-key",
        envvar="LLAMA_AGENTS_API_KEY",
        show_envvar=True,
        default=None,
        help="API key of the control plane, if it requires one.",
    )(command)
    command = click.option(
        "--control-plane-url",
        envvar="LLAMA_AGENTS_CONTROL_PLANE_URL",
        show_envvar=True,
        default=DEFAULT_CONTROL_PLANE_URL,
        show_default=True,
        help="Base URL of the control plane's HTTP API.",
    )(command)
    return command


def json_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout."
    )(command)


def connect(control_plane_url: str, api_key: str | None) -> LlamaAgentsClient:
    from llama_agents.sdk import LlamaAgentsClient

    return LlamaAgentsClient(control_plane_url, api_key=api_key or None)


def echo_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(value, dict):
        data: Any = value
    elif isinstance(value, Sequence):
        data = [item.model_dump(mode="json") for item in value]
    else:
        data = value.model_dump(mode="json")
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def cell(value: object) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def echo_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str, indent: str = ""
) -> None:
    """Aligned columns; `empty` is printed instead when there are no rows."""
    if not rows:
        click.echo(indent + empty)
        return
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        padded = (text.ljust(width) for text, width in zip(row, widths, strict=True))
        click.echo((indent + "  ".join(padded)).rstrip())


def echo_fields(fields: Sequence[tuple[str, object]]) -> None:
    """`label: value` lines, aligned; empty values are left out."""
    shown = [(label, value) for label, value in fields if value not in (None, "")]
    width = max((len(label) for label, _ in shown), default=0)
    for label, value in shown:
        click.echo(f"{label + ':':<{width + 1}} {value}")


def when(moment: datetime | None) -> str:
    """A timestamp for people: UTC, to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def json_object(text: str, option: str) -> dict[str, Any]:
    """An option's JSON object (`--data '{"k": 1}'`), or one `Error:` line saying why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{option} must be a JSON object ({{...}}), not {text!r}")
    return value
