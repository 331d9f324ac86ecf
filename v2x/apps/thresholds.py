"""Application thresholds: the shared ones here, each app's own in its declaration (``AppSpec.thresholds``,
next to its code, with their sources), the misbehaviour checks' in ``v2x.apps.misbehaviour.THRESHOLDS``;
:data:`DEFAULTS` is all of them, overridable per scenario file.

Sources: ../shared/brief/SCENARIOS.md ("Thresholds used by open implementations").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from v2x.apps.misbehaviour import THRESHOLDS as MISBEHAVIOUR
from v2x.apps.registry import RegistryError, app_thresholds

COMMON: Mapping[str, float] = MappingProxyType(
    {
        # How long a raised warning stays valid before it may be raised again for the same pair.
        "warning_validity_s": 3.0,
        # A road traffic sign not heard for 3 s (three periods of the 1 Hz sign rate) is forgotten (road
        # events, at 10 Hz, after max_age_s).
        "rsi_sign_max_age_s": 3.0,
        # Conflict prediction horizon, s.
        "horizon_s": 6.0,
        # Remote state older than this is dropped from the on-board / platform tables, s.
        "max_age_s": 1.0,
    }
)


def _merged() -> Mapping[str, float]:
    own = app_thresholds()
    twice = sorted((set(own) & set(COMMON)) | (set(own) & set(MISBEHAVIOUR)) | (set(COMMON) & set(MISBEHAVIOUR)))
    if twice:
        raise RegistryError(f"thresholds declared twice (apps, common, misbehaviour): {', '.join(twice)}")
    return MappingProxyType({**COMMON, **MISBEHAVIOUR, **own})


DEFAULTS: Mapping[str, float] = _merged()


def resolve(overrides: Mapping[str, float]) -> dict[str, float]:
    """Defaults with the scenario's overrides applied; unknown keys raise KeyError."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(", ".join(unknown))
    return {**DEFAULTS, **overrides}
