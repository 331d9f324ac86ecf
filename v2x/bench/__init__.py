"""Benchmarks that ship with the tool (``v2x bench ...``)."""

# v2x bench realtime's default --workers: one fleet process per core, up to this many (the world takes a core of
# its own; more fleets than cores only contend)
REALTIME_MAX_WORKERS = 4
