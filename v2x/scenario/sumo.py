"""A scenario's SUMO files (the ``sumo:`` block, docs/SCENARIOS.md "SUMO co-simulation"): where they are,
what the network's lanes are, and whether SUMO is installed to run them.

The loader reads the network here to check it (a SUMO ``.net.xml`` with at least one lane, its lanes'
shapes in the scenario's local frame, finite and within MAX_EXTENT_M; each lane's length in (0, MAX_EXTENT_M]
and width in (0, 10] m) and the demand (root element <routes>; each vType's length and width, where given,
in (0, MAX_VEHICLE_SIZE_M] m, a length given for a vClass whose default is longer), neither with an
``<include>`` of another file; the simulation sizes the world from its lanes (``lane_lengths``).
SUMO itself (the eclipse-sumo wheel, the ``sumo`` extra) is needed only to run such a scenario, not to load
it: ``missing`` says what to install.
"""

from __future__ import annotations

import importlib.util
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from v2x.scenario.model import MAX_EXTENT_M
from v2x.wire.protocol import MAX_VEHICLE_SIZE_M

if TYPE_CHECKING:
    from v2x.scenario.model import Scenario

MAX_SUMO_FILE_BYTES = 16 * 1024 * 1024  # a network or a demand file of a scenario: at most this
MAX_SUMO_LANE_WIDTH_M = 10.0  # a lane of a network is at most this wide (SUMO's default is 3.2 m)
# SUMO's vehicle classes whose default length is over MAX_VEHICLE_SIZE_M (SUMO 1.28: rail 135 m, rail_electric and
# rail_fast 200 m, rail_urban and subway 109.5 m): a vType of one of them must give its length.
LONG_VCLASSES = frozenset({"rail", "rail_electric", "rail_fast", "rail_urban", "subway"})
# SUMO's built-in vehicle types of those classes, which a demand file can name without defining them
LONG_DEFAULT_TYPES = frozenset({"DEFAULT_RAILTYPE"})
INSTALL_HINT = "pip install eclipse-sumo (the package's sumo extra: pip install '.[sumo]' in a clone)"


@dataclass(frozen=True)
class SumoLane:
    """One (non-internal) lane of a SUMO network: its id, edge, centre line (local frame, m), length, width."""

    id: str
    edge: str
    shape: tuple[tuple[float, float], ...]
    length_m: float
    width_m: float


def read_xml(path: Path, what: str) -> ET.Element:
    """The root element of a SUMO XML file, or ValueError saying why not (unreadable, too large, a DOCTYPE or
    entity declaration - never expanded -, not XML, an ``<include>`` of another file)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SUMO_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SUMO_FILE_BYTES:
        raise ValueError(f"{what} of at most {MAX_SUMO_FILE_BYTES // 1024 // 1024} MiB; {str(path)!r} is larger")
    if b"\x00" in raw or raw.startswith((b"\xfe\xff", b"\xff\xfe")):  # UTF-16 or -32: no declaration is seen
        raise ValueError(f"{what} in UTF-8 (as SUMO writes them); {str(path)!r} is UTF-16 or -32")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise ValueError(f"{what} without DOCTYPE or ENTITY declarations; {str(path)!r} has one")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ValueError(f"{what} in XML; {str(path)!r}: {exc}") from None
    for element in root.iter():
        if "}" in element.tag:  # (SUMO reads `<vType xmlns="urn:x" ...>` as a vType, which the checks here, by
            # tag, would not see: attack review 8)
            raise ValueError(f"{what} without XML namespaces; {str(path)!r} has <{element.tag[:200]}>")
        if element.tag == "include":  # SUMO reads the file it names, which the checks here would not see
            raise ValueError(
                f"{what} in one file, without <include>; {str(path)!r} includes {str(element.get('href'))[:200]!r}"
            )
    return root


def read_lanes(path: Path) -> list[SumoLane]:
    """The lanes of the SUMO network at ``path`` (internal lanes of junctions left out), or ValueError."""
    root = read_xml(path, "a SUMO network (.net.xml)")
    if root.tag != "net":
        raise ValueError(f"a SUMO network (.net.xml, root element <net>); {str(path)!r} has <{root.tag}>")
    lanes: list[SumoLane] = []
    for edge in root.iter("edge"):
        if edge.get("function") == "internal":
            continue
        for lane in edge.iter("lane"):
            try:
                points = tuple(
                    (float(x), float(y)) for x, y, *_ in (p.split(",") for p in (lane.get("shape") or "").split())
                )
                length = float(lane.get("length", "nan"))
                width = float(lane.get("width", "3.2"))
            except ValueError:
                raise ValueError(
                    f"lane {lane.get('id')!r} of {str(path)!r}: a shape 'x,y x,y ...' and a length"
                ) from None
            where = f"lane {lane.get('id')!r} of {str(path)!r}"
            if len(points) < 2:
                raise ValueError(f"{where}: a shape of two or more points; got {len(points)}")
            if not all(abs(v) <= MAX_EXTENT_M for point in points for v in point):  # (NaN fails this too)
                raise ValueError(
                    f"{where}: shape coordinates that are finite numbers within {MAX_EXTENT_M:g} m of the origin "
                    f"(the local frame's reach); got {lane.get('shape')!r:.80}"
                )
            if not 0 < length <= MAX_EXTENT_M:
                raise ValueError(f"{where}: a length > 0 and <= {MAX_EXTENT_M:g} m; got {lane.get('length')!r:.40}")
            if not 0 < width <= MAX_SUMO_LANE_WIDTH_M:
                raise ValueError(
                    f"{where}: a width > 0 and <= {MAX_SUMO_LANE_WIDTH_M:g} m; got {lane.get('width')!r:.40}"
                )
            lanes.append(SumoLane(lane.get("id", ""), edge.get("id", ""), points, length, width))
    if not lanes:
        raise ValueError(f"a SUMO network with at least one lane; {str(path)!r} has none")
    return lanes


def check_routes(path: Path) -> None:
    """ValueError unless ``path`` is a SUMO demand file (root element <routes>) whose vehicle types (``<vType>``,
    in a ``<vTypeDistribution>`` too) give a length and width, where they give one, in (0, MAX_VEHICLE_SIZE_M]
    m: the bound of a vehicle in a fleet's input (docs/PROTOCOL.md), which SUMO's vehicles become. SUMO itself
    takes any size (a 100 km vehicle stalled the run: the fleet refused the world's input)."""
    root = read_xml(path, "a SUMO demand file (.rou.xml)")
    if root.tag != "routes":
        raise ValueError(f"a SUMO demand file (.rou.xml, root element <routes>); {str(path)!r} has <{root.tag}>")
    for element in root.iter():  # SUMO's own rail type, named without a vType of the file (attack review 8)
        for name in ("type", "vTypes"):
            if any(t in LONG_DEFAULT_TYPES for t in str(element.get(name, "")).split()):
                raise ValueError(
                    f"<{element.tag}> of {str(path)!r}: a vType of the file, not SUMO's {element.get(name)!r:.80} (its "
                    f"vehicles are over {MAX_VEHICLE_SIZE_M:g} m, the largest vehicle of a fleet's input)"
                )
    for vtype in root.iter("vType"):
        where = f"vType {str(vtype.get('id'))[:80]!r} of {str(path)!r}"
        vclass = vtype.get("vClass", "")
        if vtype.get("length") is None and vclass in LONG_VCLASSES:
            raise ValueError(
                f"{where}: a length (SUMO's default for vClass {vclass!r} is over {MAX_VEHICLE_SIZE_M:g} m, the "
                "largest vehicle of a fleet's input)"
            )
        for name in ("length", "width"):
            given = vtype.get(name)
            if given is None:  # SUMO's default for the vClass (checked again as a vehicle enters: v2x.sim.sumo)
                continue
            try:
                value = float(given)
            except ValueError:
                value = math.nan
            if not 0 < value <= MAX_VEHICLE_SIZE_M:  # (NaN fails this too)
                raise ValueError(
                    f"{where}: a {name} > 0 and <= {MAX_VEHICLE_SIZE_M:g} m (the largest vehicle of a fleet's "
                    f"input); got {given[:40]!r}"
                )


def lane_lengths(net: str) -> list[float]:
    """The lengths of the network's lanes (m)."""
    return [lane.length_m for lane in read_lanes(Path(net))]


def cannot_run(scenario: Scenario) -> str | None:
    """Why ``scenario`` cannot run here (None: it can): it has a ``sumo`` block and SUMO is not installed."""
    return missing() if scenario.sumo is not None else None


def missing() -> str | None:
    """What is missing to run a SUMO scenario (None: nothing): the eclipse-sumo wheel (its ``sumo`` module,
    which carries the binary and TraCI)."""
    if importlib.util.find_spec("sumo") is None:
        return f"this scenario needs SUMO (the eclipse-sumo package): {INSTALL_HINT}"
    return None
