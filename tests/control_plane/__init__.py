"""The control plane, its store and the orchestrators."""
