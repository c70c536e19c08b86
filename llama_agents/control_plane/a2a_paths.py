"""Where the control plane serves A2A: known before the SDK is imported (it is, lazily)."""

#: A2A's JSON-RPC binding.
RPC_PATH = "/a2a"
#: The agent card (A2A's well-known path).
CARD_PATH = "/.well-known/agent-card.json"
