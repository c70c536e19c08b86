"""The mesh as an A2A agent: the control plane serves A2A's JSON-RPC binding and agent card.

- `POST /a2a`: A2A's JSON-RPC binding (v1.0 method names, and v0.3's `message/send`,
  `message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`), carried out by
  `MeshRequestHandler` (`a2a_handler.py`: our tasks are the A2A tasks).
- `GET /.well-known/agent-card.json`: the card, its skills the registered services.

Both sit behind the system's API key like every route but `/health`. For the card that is a
choice: the A2A specification lets an agent protect its card with authentication when it holds
sensitive information, and ours lists the system's services, which the rest of our API (`GET
/services`) shows only to key holders; so a client fetches it with the key it will call with.
The card declares the bearer scheme either way, so a client holding it knows what to send.

Served when the a2a SDK is installed (`pip install 'llama-agents[a2a]'`):
`LLAMA_AGENTS_A2A=false` turns it off, `true` makes a missing SDK a `ConfigurationError`.
The SDK is imported only here, when the app is built, never with the package.
"""

from __future__ import annotations

import logging
from importlib import metadata

from fastapi import FastAPI
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from llama_agents._settings import env_str
from llama_agents.control_plane.a2a_paths import CARD_PATH, RPC_PATH
from llama_agents.control_plane.face import ControlPlaneFace
from llama_agents.errors import ConfigurationError

logger = logging.getLogger("llama_agents.control_plane")

INSTALL_HINT = "pip install 'llama-agents[a2a]'"


def a2a_sdk_installed() -> bool:
    """Whether the official `a2a-sdk` distribution is installed (not any `a2a` module)."""
    try:
        metadata.version("a2a-sdk")
    except metadata.PackageNotFoundError:
        return False
    return True


def a2a_wanted() -> bool:
    """Whether to serve A2A: `LLAMA_AGENTS_A2A` (`auto`, the default: when the SDK is
    installed; `true`: required; `false`: never)."""
    setting = env_str("A2A", "auto").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting not in ("auto", "1", "true", "yes", "on"):
        raise ConfigurationError(f"LLAMA_AGENTS_A2A={setting!r}: use auto, true or false")
    if a2a_sdk_installed():
        return True
    if setting != "auto":
        raise ConfigurationError(f"LLAMA_AGENTS_A2A={setting} needs the a2a SDK: {INSTALL_HINT}")
    return False


def add_a2a_routes(app: FastAPI, control_plane: ControlPlaneFace) -> None:
    """Serve A2A on `app` (see the module doc); nothing when it is not wanted.

    The SDK's routes are built at the first A2A request, not with the app: importing the
    SDK's server side takes about 0.6 s (it pulls in its database task stores), which every
    control plane would otherwise pay at start, whether anyone speaks A2A to it or not.
    """
    if not a2a_wanted():
        return
    endpoint = _BuiltOnFirstUse(control_plane)
    app.router.routes.append(Route(RPC_PATH, endpoint, methods=["POST"]))
    app.router.routes.append(Route(CARD_PATH, endpoint, methods=["GET"]))


class _BuiltOnFirstUse:
    """An ASGI app that builds the SDK's A2A routes when first called, then hands them
    every request for the A2A paths."""

    def __init__(self, control_plane: ControlPlaneFace) -> None:
        self.control_plane = control_plane
        self._router: Router | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._router is None:
            self._router = Router(routes=_sdk_routes(self.control_plane))
        await self._router(scope, receive, send)


def _sdk_routes(control_plane: ControlPlaneFace) -> list[BaseRoute]:
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.types import AgentCard

    from llama_agents.control_plane.a2a_card import agent_card
    from llama_agents.control_plane.a2a_handler import MeshRequestHandler
    from llama_agents.messages import ServiceDefinition

    async def current_card(_: AgentCard) -> AgentCard:
        return agent_card(control_plane)  # the registry (and the URL) as of this request

    # The card given to the route is never served: the modifier builds one per request. It
    # has a stand-in skill only so that the SDK finds it complete.
    stand_in = ServiceDefinition(service_name="services", description="The registered ones.")
    return [
        *create_agent_card_routes(
            agent_card(control_plane, [stand_in]), card_modifier=current_card, card_url=CARD_PATH
        ),
        *create_jsonrpc_routes(
            MeshRequestHandler(control_plane), rpc_url=RPC_PATH, enable_v0_3_compat=True
        ),
    ]
