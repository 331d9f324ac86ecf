"""What a host takes as the world's input for a tick: one check of a ``TickInput``'s content and one rule for the
tick an input may be, for every host (the built-in agents' ``v2x.net.host``, the SDK's ``v2x.sdk.client``, and
for the tick and its time also the fleets' ``v2x.net.fleet``, whose ``FleetInput`` is another message).
docs/PROTOCOL.md ("Lockstep", "The Python SDK", "Fleet bundles") says what they refuse and how it is counted.

Anyone may publish on an open broker, so a host takes only what a world sends: :func:`read_tick_input` refuses
(as ``malformed``) bytes that are no TickInput of the run, or whose numbers no world sends (``tick_input_problem``);
:func:`next_tick_problem` refuses (as ``bad_tick``) a tick other than the next one. Written once since session 20:
the SDK's checks (session 18) and the built-in agents' had drifted apart (a negative GNSS sigma, a NaN GNSS error,
``time_us`` 2^62, a delivery after the tick, ``late_ticks`` [99] on tick 3 were taken by the built-in agents and
refused by the SDK). The size check (``oversized``) stays with each host, which knows its message's limit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from v2x.wire import testbed_pb2

# A TickInput whose GNSS error is larger is refused (``malformed``): the world's are metres.
MAX_GNSS_ERROR_M = 100_000.0


def mistyped_fields(msg: Message) -> list[int]:
    """The field numbers ``msg`` knows that arrived with another wire type (kept as unknown fields by the
    parser): the bytes are some other message (an Envelope published on an ack topic parses as an Ack
    with its ``tx_time_us`` in place of the truth). Unknown field numbers (a newer peer's fields) are fine."""
    unknown = UnknownFieldSet(msg)
    if not len(unknown):  # the usual case, asked for every envelope (thousands per tick from fleets)
        return []
    known = msg.DESCRIPTOR.fields_by_number
    return [unknown[k].field_number for k in range(len(unknown)) if unknown[k].field_number in known]


def tick_time_problem(tick: int, time_us: int, tick_us: int) -> str | None:
    """Why ``time_us`` is no time of tick ``tick`` of ``tick_us`` ticks, None if it is: ``tick`` x ``tick_us``, as the
    world's (``round(t x 1e6)`` from a tick of any length: within half a microsecond per tick), and ``tick_us`` above
    0. A TickInput's and a FleetInput's."""
    if tick_us <= 0 or abs(time_us - tick * tick_us) > tick // 2 + 1:
        return f"time_us {time_us} is not tick x tick_us ({tick} x {tick_us})"
    return None


def _collision_numbers(c: testbed_pb2.TickInput.Collision) -> tuple[float, ...]:
    return (c.t_s, c.relative_speed_mps)


def _warp_numbers(w: testbed_pb2.SignalWarp) -> tuple[float, ...]:
    return (w.at_s, w.hold_s, w.skip_to_s)


def _detection_numbers(d: testbed_pb2.Detection) -> tuple[float, ...]:
    return (d.x_m, d.y_m, d.vx_mps, d.vy_mps, d.heading_deg, d.length_m, d.width_m, d.sigma_m, d.speed_sigma_mps)


#: The repeated parts of a TickInput whose numbers must be finite, each with the numbers of one item: one table
#: for this check and the world's net under it (``Simulation._sendable``).
FINITE_PARTS: tuple[tuple[str, Callable[[Any], tuple[float, ...]]], ...] = (
    ("collisions", _collision_numbers),
    ("signal_warps", _warp_numbers),
    ("detections", _detection_numbers),
)


def _finite(ti: testbed_pb2.TickInput, *, warps: bool = True, detections: bool = True) -> bool:
    """Whether the numbers of ``ti``'s collisions, (``detections``) detections and (``warps``) signal warps are all
    finite. Their sum is finite only if each is (a NaN or an infinity stays in it), so each is looked at only when
    the sum is not (also when finite ones overflow it): in about half the time (an RSU's 100 detections, diff
    review 25)."""
    # (the table's numbers summed inline: through its functions this check took 88 us instead of 56 for an input
    # with 100 detections, and every host runs it on every input)
    total = sum(c.t_s + c.relative_speed_mps for c in ti.collisions)
    if detections:
        total += sum(
            d.x_m + d.y_m + d.vx_mps + d.vy_mps + d.heading_deg + d.length_m + d.width_m + d.sigma_m + d.speed_sigma_mps
            for d in ti.detections
        )
    if warps:
        total += sum(w.at_s + w.hold_s + w.skip_to_s for w in ti.signal_warps)
    if math.isfinite(total):
        return True
    parts = [
        (getattr(ti, name), numbers)
        for name, numbers in FINITE_PARTS
        if (warps or name != "signal_warps") and (detections or name != "detections")
    ]
    return all(math.isfinite(n) for items, numbers in parts for item in items for n in numbers(item))


def shared_input_problem(tick: int, time_us: int, tick_us: int, warps: Sequence[testbed_pb2.SignalWarp]) -> str | None:
    """What :func:`tick_input_problem` says of the parts every actor's TickInput of a tick shares: its time and the
    signal warps. The world checks them once a tick, then each input with ``shared_checked``."""
    if (wrong_time := tick_time_problem(tick, time_us, tick_us)) is not None:
        return wrong_time
    if not all(math.isfinite(n) for w in warps for n in _warp_numbers(w)):
        return NOT_FINITE
    return None


NOT_FINITE = "a number that is not finite (collisions, detections, signal warps)"


def tick_input_problem(
    ti: testbed_pb2.TickInput,
    *,
    shared_checked: bool = False,
    detections_checked: bool = False,
    rx_time_us: Sequence[int] | None = None,
) -> str | None:
    """What makes ``ti`` no TickInput a world sends, None if nothing: ``time_us`` is ``tick`` x ``tick_us`` (the
    world's, from a tick of any length, within half a microsecond per tick); an available GNSS reading's errors
    are finite and within ``MAX_GNSS_ERROR_M``, its sigmas finite and not negative; each ``rx_time_us`` is within
    0 .. ``time_us``; the collisions', detections' and signal warps' numbers are finite; ``late_ticks`` are
    earlier ticks. (Since session 18 in the SDK: a forged next tick with a negative sigma made ``Stack.bsm`` raise
    and the stack exit, one with ``time_us`` 2^62 made it report a truth the world refused, for ever.)
    ``shared_checked``: the time and the signal warps are not looked at (``shared_input_problem`` was, for the
    tick: the world's inputs of a tick share them); ``detections_checked``: nor the detections (the world looked at
    the numbers it built them of: ``v2x.sim.sensors.Sensors.detections_checked``); ``rx_time_us``: ``ti``'s, as the
    caller built it from (a list: the min and max of a message's field take 4 times as long)."""
    if not shared_checked and (wrong_time := tick_time_problem(ti.tick, ti.time_us, ti.tick_us)) is not None:
        return wrong_time
    g = ti.gnss
    if g.available:
        errors, sigmas = (g.east_error_m, g.north_error_m), (g.sigma_major_m, g.sigma_minor_m)
        if not all(math.isfinite(e) and abs(e) <= MAX_GNSS_ERROR_M for e in errors):
            return f"GNSS error {errors} (finite, at most {MAX_GNSS_ERROR_M:g} m)"
        if not all(math.isfinite(s) and s >= 0 for s in sigmas):
            return f"GNSS sigmas {sigmas} (finite, >= 0)"
    rx = (
        ti.rx_time_us if rx_time_us is None else rx_time_us
    )  # (min and max: a host asks this of every agent's input, with hundreds of deliveries)
    if rx and (min(rx) < 0 or max(rx) > ti.time_us):
        return f"an rx_time_us outside 0..{ti.time_us}"
    if not _finite(ti, warps=not shared_checked, detections=not detections_checked):
        return NOT_FINITE
    late = ti.late_ticks
    if late and (late[-1] >= ti.tick or any(b <= a for a, b in itertools.pairwise(late))):
        # (each tick closed without the actor's report once, in order, all before this one: 3,000 copies of one
        # tick made the SDK re-report a warning 3,000 times into an Ack the world refused, attack review 4)
        return f"late_ticks {list(late)[:5]}{' ...' if len(late) > 5 else ''} not rising and before tick {ti.tick}"
    return None


def read_tick_input(payload: bytes, run_id: str, *, tick_us: int | None = None) -> testbed_pb2.TickInput | str:
    """``payload`` as a TickInput of run ``run_id``, or why it is none a world sends (each host counts that as
    ``malformed``): it does not parse, a field it knows came with another wire type (other bytes, e.g. an Envelope),
    ``rx_time_us`` does not pair with ``envelopes``, it is another run's, its ``tick_us`` is not the run's
    ``tick_us`` (when given: a host that knows it; the SDK learns it from START, later, and compares then), or
    :func:`tick_input_problem`."""
    ti = testbed_pb2.TickInput()
    try:
        ti.ParseFromString(payload)
    except DecodeError:
        return f"{len(payload)} bytes that are no TickInput"
    if mistyped_fields(ti) or len(ti.rx_time_us) != len(ti.envelopes):
        return f"{len(payload)} bytes that are no TickInput (mistyped fields, or rx_time_us not one per envelope)"
    if ti.run_id != run_id:
        return f"a TickInput of run {ti.run_id[:64]!r}, not {run_id[:64]!r}"
    if tick_us is not None and ti.tick_us != tick_us:
        return f"TickInput({ti.tick}) of {ti.tick_us} us ticks, the run's are {tick_us} us"
    problem = tick_input_problem(ti)
    return f"TickInput({ti.tick}): {problem}" if problem is not None else ti


def next_tick_problem(tick: int, final: bool, *, last: int, n_ticks: int | None, max_skip: int = 0) -> str | None:
    """Why tick ``tick`` (its input's ``final`` flag) may not follow tick ``last`` (-1: none yet), None if it may
    (else each host counts it as ``bad_tick``): tick 0 first, then ``last`` + 1, or up to ``max_skip`` ticks
    further (the host's mode: 0 in lockstep, where the world sends every tick until it is answered; in real time an
    input can be lost, and each host bounds the skip its own way); never past the run's last tick ``n_ticks`` (None:
    not known), and ``final`` there and only there (a forged ``TickInput(10^6, final)`` ended a stack early). A host
    answers its answered ticks again before it asks this (``v2x.net.answers``)."""
    limit = last + 1 + max(max_skip, 0)
    if n_ticks is not None:
        limit = min(limit, n_ticks)
    if not last < tick <= limit:
        return f"tick {tick} after tick {last}"
    if n_ticks is not None and final != (tick == n_ticks):
        return f"tick {tick} with final={final} in a run of ticks 0..{n_ticks}"
    return None
