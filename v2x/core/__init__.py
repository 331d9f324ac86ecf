"""Latency-critical, sans-I/O core: world state, spatial grid, fan-out and conflict detection (and the fleet
agent's arrays: who heard whom, its BSM envelopes).

Arrays in, arrays out. No asyncio, no MQTT, no per-tick logging. See docs/CORE.md.
"""

from v2x.core._conflict import (
    SPEED_EPS_MPS,
    VERTICAL_SEPARATION_M,
    Conflicts,
    ConflictType,
    detect_conflicts,
    overlapping_pairs,
)
from v2x.core._fanout import (
    ChannelTables,
    Deliveries,
    LinkModel,
    LinkTables,
    TabulatedLink,
    default_cell_m,
    delivery_distances,
    fan_out_addressed,
    fan_out_broadcast,
    latencies_ms,
)
from v2x.core._fleet_wire import VEHICLE_NUMBERS, fleet_vehicle_numbers, refreshed_envelopes, writes_from_arrays
from v2x.core._grid import SpatialGrid
from v2x.core._heard import stamp_deliveries, touching_pairs_heard
from v2x.core._jit import SMALL_WORLD, always_compiled
from v2x.core._scan import SCAN_AT_LEAST, scan_messages
from v2x.core._world import ActorKind, WorldState

__all__ = [
    "SCAN_AT_LEAST",
    "SMALL_WORLD",
    "SPEED_EPS_MPS",
    "VEHICLE_NUMBERS",
    "VERTICAL_SEPARATION_M",
    "ActorKind",
    "ChannelTables",
    "ConflictType",
    "Conflicts",
    "Deliveries",
    "LinkModel",
    "LinkTables",
    "SpatialGrid",
    "TabulatedLink",
    "WorldState",
    "always_compiled",
    "default_cell_m",
    "delivery_distances",
    "detect_conflicts",
    "fan_out_addressed",
    "fan_out_broadcast",
    "fleet_vehicle_numbers",
    "latencies_ms",
    "overlapping_pairs",
    "refreshed_envelopes",
    "scan_messages",
    "stamp_deliveries",
    "touching_pairs_heard",
    "writes_from_arrays",
]
