"""SUMO as a test oracle: its home and TraCI module, or a skip when eclipse-sumo is not installed."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import pytest


def sumo_or_skip() -> tuple[str, ModuleType]:
    """SUMO_HOME and the ``traci`` module (its tools put on sys.path); skips the test without SUMO."""
    try:
        sumo = importlib.import_module("sumo")
        home = str(sumo.SUMO_HOME)
        tools = os.path.join(home, "tools")
        if tools not in sys.path:
            sys.path.append(tools)
        traci = importlib.import_module("traci")
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"SUMO not installed: eclipse-sumo / traci import failed ({exc})")
    binary = os.path.join(home, "bin", "sumo")
    if not os.path.exists(binary):  # pragma: no cover
        pytest.skip(f"SUMO not installed: no binary at {binary}")
    return home, traci
