"""Whole systems: README flows, examples, processes, compose, install."""
