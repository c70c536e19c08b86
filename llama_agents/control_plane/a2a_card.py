"""The control plane's A2A agent card: the mesh as one agent whose skills are its services.

It is built afresh for every request from the service registry, so a service that registers
or leaves shows on the next read. Tool services are not skills: they take tool calls from
agents, not tasks (the orchestrator does not offer them either).
"""

from __future__ import annotations

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from llama_agents import __version__
from llama_agents._settings import env_str
from llama_agents.control_plane.a2a_paths import RPC_PATH
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.messages import ServiceDefinition

#: The name of the bearer scheme the card declares when the system has an API key.
BEARER = "bearer"

_DESCRIPTION = (
    "A llama-agents system: a mesh of agents and workflows on RabbitMQ. Each skill is one of "
    "its services (name a skill with `skill_id` in the message's metadata to run a task there "
    "directly); without one, the system's orchestrator routes the task. A task that asks for "
    "input is `input-required`: answer with a message in the same task."
)


def skill_services(control_plane: ControlPlaneFace) -> list[ServiceDefinition]:
    """The registered services a task can be sent to: every one but tool services."""
    return [d for d in control_plane.manager.registry.all() if d.kind != "tool"]


def a2a_url(control_plane: ControlPlaneFace) -> str:
    """Where clients reach the JSON-RPC binding: `LLAMA_AGENTS_A2A_URL` (the public URL,
    behind a proxy or a load balancer), else `/a2a` on the control plane's own URL."""
    return env_str("A2A_URL", "") or f"{control_plane.url}{RPC_PATH}"


def agent_card(
    control_plane: ControlPlaneFace, services: list[ServiceDefinition] | None = None
) -> AgentCard:
    """The card as of now: the registered services as skills (or `services`), streaming, the
    bearer key."""
    url = a2a_url(control_plane)
    if services is None:
        services = skill_services(control_plane)
    card = AgentCard(
        name=env_str("A2A_NAME", "llama-agents"),
        description=_DESCRIPTION,
        version=__version__,
        supported_interfaces=[
            # One endpoint speaks both: the SDK's JSON-RPC binding with its v0.3 adapter.
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_0_3,
            ),
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=False
        ),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id=d.service_name,
                name=d.service_name,
                description=d.description,
                tags=[d.kind or "service"],
            )
            for d in services
        ],
    )
    if control_plane.api_key is not None:
        card.security_schemes[BEARER].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer",
                    description="The system's API key (LLAMA_AGENTS_API_KEY).",
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card
