"""World state: every actor's kinematics in one struct of arrays, with stable slot maps."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ActorKind", "WorldState"]


class ActorKind(IntEnum):
    """Road-user kinds. Stored as ints in ``WorldState.kind``."""

    CAR = 1
    TRUCK = 2
    BUS = 3
    EMERGENCY = 4
    PEDESTRIAN = 5
    CYCLIST = 6
    RSU = 7


_FLOAT_FIELDS = (
    "x",
    "y",
    "vx",
    "vy",
    "ax",
    "ay",
    "heading_rad",
    "length_m",
    "width_m",
    "pos_sigma_m",
    "z",
    "vz",
)
_INT_FIELDS = ("kind", "lane")


class WorldState:
    """Struct of arrays holding every actor present in the world.

    Positions are local ENU metres of the *footprint centre*; ``heading_rad`` is the yaw of the
    footprint box (counter-clockwise from east) and stays meaningful at zero speed. All arrays are
    sized to ``capacity``; only slots with ``active[slot]`` set carry data, and everything in
    ``v2x.core`` ignores the others. Capacity doubles when full, which *replaces* the arrays: do not
    keep references to them across ``add`` calls.

    Slots are stable while an actor is present. ``add`` takes the lowest free slot, so the same
    sequence of ``add``/``remove`` calls always produces the same slots.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    vx: NDArray[np.float64]
    vy: NDArray[np.float64]
    ax: NDArray[np.float64]
    ay: NDArray[np.float64]
    heading_rad: NDArray[np.float64]
    length_m: NDArray[np.float64]
    width_m: NDArray[np.float64]
    pos_sigma_m: NDArray[np.float64]
    z: NDArray[np.float64]  # height above the origin (road surface); nan: unknown (never kept apart by it)
    vz: NDArray[np.float64]  # vertical speed (m/s, up positive): the height's change to a predicted conflict
    kind: NDArray[np.int64]
    lane: NDArray[np.int64]
    active: NDArray[np.bool_]

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = int(capacity)
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.zeros(self._capacity, dtype=np.float64))
        self.kind = np.zeros(self._capacity, dtype=np.int64)
        self.lane = np.full(self._capacity, -1, dtype=np.int64)
        self.active = np.zeros(self._capacity, dtype=np.bool_)
        self._slot_by_id: dict[str, int] = {}
        self._id_by_slot: list[str | None] = [None] * self._capacity
        self._free: list[int] = []  # min-heap of freed slots below the high-water mark
        self._high_water = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def n_active(self) -> int:
        return len(self._slot_by_id)

    @property
    def high_water(self) -> int:
        """One past the highest slot ever used; slots at or above it are always inactive."""
        return self._high_water

    def active_slots(self) -> NDArray[np.intp]:
        """Active slots in ascending order."""
        return np.flatnonzero(self.active[: self._high_water])

    def _grow(self, minimum: int) -> None:
        new_cap = self._capacity
        while new_cap < minimum:
            new_cap *= 2
        for name in (*_FLOAT_FIELDS, *_INT_FIELDS, "active"):
            old: NDArray[np.generic] = getattr(self, name)
            fill: float | int | bool = -1 if name == "lane" else 0
            new = np.full(new_cap, fill, dtype=old.dtype)
            new[: self._capacity] = old
            setattr(self, name, new)
        self._id_by_slot.extend([None] * (new_cap - self._capacity))
        self._capacity = new_cap

    def add(self, actor_id: str, kind: ActorKind, length_m: float, width_m: float) -> int:
        """Add an actor at rest at the origin; returns its slot. Raises ValueError if already present."""
        if actor_id in self._slot_by_id:
            raise ValueError(f"actor {actor_id!r} already present in slot {self._slot_by_id[actor_id]}")
        if length_m <= 0 or width_m <= 0:
            raise ValueError(f"footprint must be positive, got {length_m} x {width_m} m")
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            slot = self._high_water
            self._high_water += 1
            if slot >= self._capacity:
                self._grow(slot + 1)
        for name in _FLOAT_FIELDS:
            getattr(self, name)[slot] = 0.0
        self.length_m[slot] = length_m
        self.width_m[slot] = width_m
        self.kind[slot] = int(kind)
        self.lane[slot] = -1
        self.active[slot] = True
        self._slot_by_id[actor_id] = slot
        self._id_by_slot[slot] = actor_id
        return slot

    def add_many(
        self, actor_ids: Sequence[str], kind: ActorKind, length_m: ArrayLike, width_m: ArrayLike
    ) -> NDArray[np.intp]:
        """:meth:`add` for several actors of one kind at once (the same slots, in order, as adding them one
        by one); vectorised when no slot below the high-water mark is free."""
        lengths = np.broadcast_to(np.asarray(length_m, dtype=np.float64), (len(actor_ids),))
        widths = np.broadcast_to(np.asarray(width_m, dtype=np.float64), (len(actor_ids),))
        if self._free:
            return np.array(
                [self.add(a, kind, float(ln), float(w)) for a, ln, w in zip(actor_ids, lengths, widths, strict=True)],
                dtype=np.intp,
            )
        ids = list(actor_ids)
        if len(set(ids)) != len(ids) or any(a in self._slot_by_id for a in ids):
            dup = next(a for k, a in enumerate(ids) if a in self._slot_by_id or a in ids[:k])
            raise ValueError(f"actor {dup!r} already present")
        if not (bool(np.all(lengths > 0)) and bool(np.all(widths > 0))):
            raise ValueError("footprints must be positive")
        first = self._high_water
        stop = first + len(ids)
        if stop > self._capacity:
            self._grow(stop)
        self._high_water = stop
        for name in _FLOAT_FIELDS:
            getattr(self, name)[first:stop] = 0.0
        self.length_m[first:stop] = lengths
        self.width_m[first:stop] = widths
        self.kind[first:stop] = int(kind)
        self.lane[first:stop] = -1
        self.active[first:stop] = True
        for k, a in enumerate(ids):
            self._slot_by_id[a] = first + k
        self._id_by_slot[first:stop] = ids
        return np.arange(first, stop, dtype=np.intp)

    def remove(self, actor_id: str) -> None:
        """Remove an actor (KeyError if unknown); its slot becomes free for reuse."""
        slot = self._slot_by_id.pop(actor_id)
        self._id_by_slot[slot] = None
        self.active[slot] = False
        heapq.heappush(self._free, slot)

    def slot_of(self, actor_id: str) -> int:
        """Slot of a present actor; KeyError if unknown."""
        return self._slot_by_id[actor_id]

    def id_of(self, slot: int) -> str:
        """Actor id in an active slot; KeyError if the slot is free."""
        actor_id = self._id_by_slot[slot] if 0 <= slot < self._capacity else None
        if actor_id is None:
            raise KeyError(f"slot {slot} is not active")
        return actor_id

    def __contains__(self, actor_id: object) -> bool:
        return actor_id in self._slot_by_id

    def set_state(
        self,
        slots: ArrayLike,
        x: ArrayLike,
        y: ArrayLike,
        vx: ArrayLike,
        vy: ArrayLike,
        ax: ArrayLike,
        ay: ArrayLike,
        heading_rad: ArrayLike,
        pos_sigma_m: ArrayLike | None = None,
        lane: ArrayLike | None = None,
        z: ArrayLike | None = None,
        vz: ArrayLike | None = None,
    ) -> None:
        """Write kinematics for ``slots`` (vectorised; scalars broadcast). Slots must be active. ``z`` (height)
        and ``vz`` (its rate; each default: left as it is, 0 for a new actor) matter only to the vertical
        separation of conflicts and overlaps (``v2x.core._conflict.same_level``)."""
        s = np.asarray(slots, dtype=np.intp)
        if s.size and (s.min() < 0 or s.max() >= self._capacity or not bool(self.active[s].all())):
            raise ValueError("set_state on an inactive or out-of-range slot")
        self.x[s] = x
        self.y[s] = y
        self.vx[s] = vx
        self.vy[s] = vy
        self.ax[s] = ax
        self.ay[s] = ay
        self.heading_rad[s] = heading_rad
        if pos_sigma_m is not None:
            self.pos_sigma_m[s] = pos_sigma_m
        if lane is not None:
            self.lane[s] = lane
        if z is not None:
            self.z[s] = z
        if vz is not None:
            self.vz[s] = vz
