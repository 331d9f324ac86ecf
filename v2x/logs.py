"""Logging what is refused without flooding the log: one rule for the world, the agents, the SDK, the fleet
workers and the embedded broker.

A forger on an open broker can send thousands of messages a second; logging each refusal at WARNING would
bury the run's own lines (an attack review's 5000 forged FleetHellos made 5000 lines). So the first
``LOG_FIRST`` refusals of each kind are logged at WARNING, then one line says that further ones are only
counted, and the rest go to DEBUG; the counts themselves end up in the result (``rejected``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # every command's log lines (and its workers')
LOG_FIRST = 5  # refusals of one kind logged at WARNING; the rest are counted (and logged at DEBUG)


def log_refusal(logger: logging.Logger, n: int, who: str, kind: str, message: str, *args: object) -> None:
    """Log the ``n``-th refusal of ``kind`` by ``who`` (``message`` % ``args``): at WARNING up to
    ``LOG_FIRST``, where a second line says that further ones are only counted; at DEBUG after that."""
    level = logging.WARNING if n <= LOG_FIRST else logging.DEBUG
    if logger.isEnabledFor(level):
        logger.log(level, message, *args)
    if n == LOG_FIRST:
        logger.warning("%s: %d %s so far; further ones are only counted", who, n, kind)


def flag_text(conflicts: Mapping[str, int]) -> str:
    """Why an actor (or fleet) with these conflict counts (``metrics.<variant>.flagged``) is flagged, in words
    that follow its name (the world's log, ``v2x run``'s FLAGGED line)."""
    floods = conflicts.get("input_overflow", 0)
    flood = (
        f"its deliveries were cut from {floods} inputs, being more than its fair share of what an input holds "
        "(it floods: docs/SECURITY.md)"
    )
    if not set(conflicts) - {"input_overflow"}:
        return flood
    others = {k: n for k, n in conflicts.items() if k != "input_overflow"}
    return (
        f"its reports conflicted {others} (two stacks drive it, or someone forges its messages; docs/SECURITY.md)"
        + (f"; {flood}" if floods else "")
    )
