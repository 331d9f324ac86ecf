"""Benchmarks that ship with the tool (``v2x bench ...``)."""
