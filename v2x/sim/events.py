"""The events a run records (warnings, collisions, violations, stops, passages, positioning changes,
misbehaviour reports) as plain dicts, the form result.json keeps them in, and their one deterministic order."""

from __future__ import annotations

from typing import Any


def event_order(e: dict[str, Any]) -> tuple[Any, ...]:
    """Time order; ties broken by variant, kind and the actors involved, so the order is deterministic."""
    return (
        e["t_s"],
        e["variant"],
        e["type"],
        e.get("target", e.get("actor", "")),
        e.get("other", ""),
        str(e.get("actors", "")),
        e.get("suspect", ""),
        e.get("check", ""),
    )
