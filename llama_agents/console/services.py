"""`llama-agents services ...`: see which services a running control plane knows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from llama_agents.console._common import (
    client_options,
    connect,
    echo_fields,
    echo_json,
    echo_table,
    json_option,
)

if TYPE_CHECKING:
    from llama_agents.messages import ServiceDefinition
    from llama_agents.messages.records import ServiceInfo


@click.group()
def services() -> None:
    """List and inspect the services registered with a control plane."""


def _address(definition: ServiceDefinition) -> str:
    if definition.host is None:
        return ""
    return definition.host if definition.port is None else f"{definition.host}:{definition.port}"


def _live(info: ServiceInfo) -> str:
    """yes / no, or ? when the broker could not say."""
    return "?" if info.live is None else ("yes" if info.live else "no")


def _consumers(info: ServiceInfo) -> str:
    return "?" if info.consumers is None else str(info.consumers)


@services.command("list")
@json_option
@client_options
def list_(as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """List the registered services, and whether anything consumes their queues now."""
    with connect(control_plane_url, api_key) as client:
        infos = client.list_services()
    if as_json:
        echo_json(infos)
        return
    rows = [(i.service_name, _live(i), _consumers(i), _address(i), i.description) for i in infos]
    headers = ["SERVICE", "LIVE", "CONSUMERS", "ADDRESS", "DESCRIPTION"]
    echo_table(headers, rows, "No services registered.")


@services.command("get")
@click.argument("name")
@json_option
@client_options
def get(name: str, as_json: bool, control_plane_url: str, api_key: str | None) -> None:
    """Show one service's definition."""
    with connect(control_plane_url, api_key) as client:
        definition = client.get_service(name)
    if as_json:
        echo_json(definition)
        return
    echo_fields(
        [
            ("Service", definition.service_name),
            ("Live", _live(definition)),
            ("Consumers", _consumers(definition)),
            ("Address", _address(definition)),
            ("Description", definition.description),
            ("Prompt", f"{len(definition.prompt)} message(s)" if definition.prompt else None),
        ]
    )
