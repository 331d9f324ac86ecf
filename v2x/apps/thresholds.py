"""Application thresholds: the shared ones here, each app's own in its declaration (``AppSpec.thresholds``,
next to its code, with their sources), the misbehaviour checks' in ``v2x.apps.misbehaviour.THRESHOLDS``;
:data:`DEFAULTS` is all of them, overridable per scenario file.

:data:`BOUNDS` is the values each may take, which the scenario loader checks (a value outside is refused
with exit 2 before anything runs): the rule by unit, :data:`UNIT_BOUNDS` (the suffix of the name: a time
``_s`` 0..3600 s, a distance ``_m`` 0..1000 m, ...), unless the threshold's declaration gives its own
(``COMMON_BOUNDS`` here, ``misbehaviour.THRESHOLD_BOUNDS``, ``AppSpec.threshold_bounds``): a divisor or a
period is > 0, a figure that sizes per-tick work has a tighter upper bound, a count is 1..1000.

Sources: ../shared/brief/SCENARIOS.md ("Thresholds used by open implementations").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from v2x.apps.misbehaviour import THRESHOLD_BOUNDS as MISBEHAVIOUR_BOUNDS
from v2x.apps.misbehaviour import THRESHOLDS as MISBEHAVIOUR
from v2x.apps.registry import Bounds, RegistryError, app_threshold_bounds, app_thresholds

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


# The rule by unit: a threshold whose name ends so may take these values, unless its declaration gives its own
# bounds. Each upper bound is past anything meaningful, low enough that no value makes a run's work explode.
UNIT_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "_s": Bounds(0.0, 3600.0),  # a time: at most the longest run (duration_s <= 3600)
        "_m": Bounds(0.0, 1000.0),  # a distance: within 1 km (beyond any V2X radio's reach)
        "_mps": Bounds(0.0, 100.0),  # a speed: at most 360 km/h
        "_kph": Bounds(0.0, 360.0),
        "_mps2": Bounds(0.0, 30.0),  # an acceleration: at most about 3 g
        "_deg": Bounds(0.0, 180.0),  # an angle between headings
        "_per_s": Bounds(0.0, 10.0),  # a controller's gain
        "_per_s2": Bounds(0.0, 10.0),
    }
)
# A threshold with none of these units and no bounds of its own (an installed package's app): the schema's
# old range.
OTHER_BOUNDS = Bounds(0.0, 1e6)

COMMON_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        # Conflicts are predicted at most a minute ahead; 0 predicts none.
        "horizon_s": Bounds(0.0, 60.0, above_low=True),
    }
)


def unit_bounds(name: str) -> Bounds | None:
    """The rule by unit's bounds for a threshold called ``name`` (the longest matching suffix), or None."""
    fits = [unit for unit in UNIT_BOUNDS if name.endswith(unit)]
    return UNIT_BOUNDS[max(fits, key=len)] if fits else None


def _merged() -> Mapping[str, float]:
    own = app_thresholds()
    twice = sorted((set(own) & set(COMMON)) | (set(own) & set(MISBEHAVIOUR)) | (set(COMMON) & set(MISBEHAVIOUR)))
    if twice:
        raise RegistryError(f"thresholds declared twice (apps, common, misbehaviour): {', '.join(twice)}")
    return MappingProxyType({**COMMON, **MISBEHAVIOUR, **own})


DEFAULTS: Mapping[str, float] = _merged()


def _bounds() -> Mapping[str, Bounds]:
    declared = {**COMMON_BOUNDS, **MISBEHAVIOUR_BOUNDS, **app_threshold_bounds()}
    unknown = sorted(set(declared) - set(DEFAULTS))
    if unknown:
        raise RegistryError(f"bounds for thresholds nobody declares: {', '.join(unknown)}")
    return MappingProxyType({k: declared.get(k) or unit_bounds(k) or OTHER_BOUNDS for k in DEFAULTS})


#: The values each threshold may take (see the module's docstring), by name.
BOUNDS: Mapping[str, Bounds] = _bounds()


def resolve(overrides: Mapping[str, float]) -> dict[str, float]:
    """Defaults with the scenario's overrides applied; unknown keys raise KeyError."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(", ".join(unknown))
    return {**DEFAULTS, **overrides}
