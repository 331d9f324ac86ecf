"""Expectations checked against a run's events and metrics, and the result file.

result.json (docs/RESULTS.md describes every key): ``scenario``, ``seed``, ``passed``, ``expectations``,
``events``, ``metrics``, and ``run`` (broker, mode, run ids, wall time: everything that may differ between
identical runs). The outcome section - ``passed``, ``expectations`` and ``events`` - is identical for the
same scenario and seed.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from v2x.apps.registry import figures, time_label
from v2x.files import replace_whole
from v2x.scenario.model import (
    MAX_GRADE,
    CollisionExpectation,
    Expectation,
    GapExpectation,
    MaxDecelExpectation,
    MetricExpectation,
    MinGapExpectation,
    MisbehaviourExpectation,
    NoCollisionExpectation,
    NoMisbehaviourExpectation,
    NoViolationExpectation,
    NoWarningExpectation,
    PositioningExpectation,
    Scenario,
    SpeedExpectation,
    StaysOnRouteExpectation,
    StopsExpectation,
    StringStableExpectation,
    TravelTimeExpectation,
    ViolationExpectation,
    WarningExpectation,
)
from v2x.sim.events import event_order
from v2x.sim.motion import MAX_SPEED_CHANGE_MPS2
from v2x.sim.perception import ERROR_KINDS as PERCEPTION_ERROR_KINDS
from v2x.text import xml_safe
from v2x.units import mps_to_kph

FIGURE_KEYS = tuple(f.name for f in figures())  # Advisory.figure_name values apps use (v2x.apps.registry)
OUTCOME_KEYS = ("scenario", "seed", "passed", "expectations", "events")


def _warnings(events: list[dict[str, Any]], variant: str, target: str, app: str | None) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "warning"
        and e["variant"] == variant
        and e["target"] == target
        and (app is None or e["app"] == app)
    ]


def _collisions(events: list[dict[str, Any]], variant: str, pair: tuple[str, str] | None) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "collision" and e["variant"] == variant and (pair is None or set(e["actors"]) == set(pair))
    ]


def _violations(events: list[dict[str, Any]], variant: str, kind: str, actor: str | None) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "violation"
        and e["variant"] == variant
        and e["kind"] == kind
        and (actor is None or e["actor"] == actor)
    ]


def _bound(x: float) -> str:
    """A bound as the scenario author wrote it: ``5`` for a whole number (a count read as a float), else the
    float's shortest repr (``0.9``)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _within(value: float, lo: float | None, hi: float | None) -> tuple[bool, str]:
    """Is ``value`` within the optional bounds, and the bounds as text (">= lo and <= hi")."""
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    text = " and ".join(
        b for b in (f">= {_bound(lo)}" if lo is not None else "", f"<= {_bound(hi)}" if hi is not None else "") if b
    )
    return ok, text


def check(
    exp: Expectation,
    events: list[dict[str, Any]],
    metrics: dict[str, dict[str, Any]],
    outside: frozenset[str] = frozenset(),
) -> tuple[bool, str]:
    """(passed, detail) for one expectation; ``outside``: the actors driven from outside (``external: true``),
    whose misbehaviour reports count only for a ``misbehaviour`` expectation that names them (``actor``)."""
    v = exp.variant
    if isinstance(exp, WarningExpectation):
        found = _warnings(events, v, exp.target, exp.app)
        if exp.other is not None:
            found = [e for e in found if e["other"] == exp.other]
        if exp.conflict is not None:
            found = [e for e in found if e["conflict"] == exp.conflict]
        if not found:
            return False, (
                f"no {exp.app.upper()} warning reached {exp.target}"
                + (f" about {exp.other}" if exp.other else "")
                + (f" ({exp.conflict})" if exp.conflict else "")
            )
        first = found[0]
        t, ttc = first["t_s"], first["ttc_s"]
        detail = f"first {exp.app.upper()} to {exp.target} at t={t:.2f} s about {first['other']}"
        if exp.conflict is not None:
            detail += f" ({exp.conflict})"
        label = time_label(exp.app)  # TTC, or TTI: the app's time is a time to reach (AppSpec.time_label)
        if ttc:  # 0: not applicable (Advisory.ttc_s), e.g. a GLOSA speed advice
            detail += f", {label} {ttc:.2f} s"
        figures = [f"{k} {first[k]}" for k in FIGURE_KEYS if k in first]
        if figures:
            detail += " (" + ", ".join(figures) + ")"
        if exp.window_s is not None and not exp.window_s[0] <= t <= exp.window_s[1]:
            return False, detail + f"; expected within {exp.window_s[0]:.2f}-{exp.window_s[1]:.2f} s"
        if exp.min_ttc_s is not None and ttc < exp.min_ttc_s:
            return False, detail + f"; expected {label} >= {exp.min_ttc_s:.2f} s"
        return True, detail
    if isinstance(exp, NoWarningExpectation):
        found = _warnings(events, v, exp.target, exp.app)
        if exp.other is not None:
            found = [e for e in found if e["other"] == exp.other]
        if found:
            e = found[0]
            return False, f"{exp.target} got {e['app'].upper()} at t={e['t_s']:.2f} s about {e['other']}"
        about = f" about {exp.other}" if exp.other is not None else ""
        return True, f"no {exp.app.upper() + ' ' if exp.app else ''}warning reached {exp.target}{about}"
    if isinstance(exp, CollisionExpectation):
        hits = _collisions(events, v, exp.actors)
        if hits:
            e = hits[0]
            return True, f"{' - '.join(e['actors'])} collided at t={e['t_s']:.2f} s, {e['relative_speed_mps']} m/s"
        return False, f"{' and '.join(exp.actors)} did not collide"
    if isinstance(exp, NoCollisionExpectation):
        hits = _collisions(events, v, exp.actors)
        if hits:
            e = hits[0]
            return False, f"{' - '.join(e['actors'])} collided at t={e['t_s']:.2f} s, {e['relative_speed_mps']} m/s"
        return True, "no collision" + (f" between {' and '.join(exp.actors)}" if exp.actors else "")
    if isinstance(exp, ViolationExpectation | NoViolationExpectation):
        hits = _violations(events, v, exp.kind, exp.actor)
        who = exp.actor or "any vehicle"
        if hits:
            e = hits[0]
            what = f"{e['actor']} crossed the {e['lane']} stop line of {e['intersection']} on red at t={e['t_s']:.2f} s"
            return isinstance(exp, ViolationExpectation), what + f", {e['speed_mps']} m/s"
        return isinstance(exp, NoViolationExpectation), f"{who}: no {exp.kind.replace('_', ' ')} violation"
    if isinstance(exp, StopsExpectation):
        stops = [e for e in events if e["type"] == "stop" and e["variant"] == v and e["actor"] == exp.actor]
        n = len(stops)
        ok, bounds = _within(n, exp.min, exp.max)
        where = ", ".join(f"t={e['t_s']:.1f} s" for e in stops)
        return ok, f"{exp.actor} stopped {n} time(s)" + (f" ({where})" if where else "") + f"; expected {bounds}"
    if isinstance(exp, SpeedExpectation):
        at = [float(exp.at[0]), float(exp.at[1])]
        passed = [
            e
            for e in events
            if e["type"] == "passage" and e["variant"] == v and e["actor"] == exp.actor and e["at"] == at
        ]
        where = f"({at[0]:g}, {at[1]:g})"
        if not passed:
            return False, f"{exp.actor} did not pass {where}"
        e = passed[0]
        ok, bounds = _within(e["speed_mps"], exp.min_mps, exp.max_mps)
        kph = mps_to_kph(e["speed_mps"])
        speed = f"{e['speed_mps']} m/s ({kph:.1f} km/h)"
        return ok, f"{exp.actor} passed {where} at t={e['t_s']:.2f} s at {speed}; expected {bounds}"
    if isinstance(exp, MisbehaviourExpectation | NoMisbehaviourExpectation):
        said = [
            e
            for e in events
            if e["type"] == "misbehaviour"
            and e["variant"] == v
            and (exp.suspect is None or e["suspect"] == exp.suspect)
        ]
        # An outside stack's own reports (its Ack's, taken as it says) decide nothing unless the expectation
        # names it: one line in an outside car's Ack failed ghost's "car A is not taken for a liar" (attack
        # review 13); without ``actor`` only the built-in detectors (the edge, built-in OBUs) count.
        named = getattr(exp, "actor", None)
        reports = [e for e in said if e["actor"] not in outside or e["actor"] == named]
        if isinstance(exp, NoMisbehaviourExpectation):
            if reports:
                e = reports[0]
                return False, f"{e['actor']} reported {e['suspect']} ({e['check']}) at t={e['t_s']:.2f} s"
            ignored = len(said) - len(reports)
            aside = f" ({ignored} report(s) by outside stacks not counted)" if ignored else ""
            return True, f"nobody reported {exp.suspect or 'anybody'} misbehaving{aside}"
        reports = [
            e
            for e in reports
            if (exp.actor is None or e["actor"] == exp.actor) and (exp.check is None or e["check"] == exp.check)
        ]
        by = f" by {exp.actor}" if exp.actor else ""
        if not reports:
            return False, f"no report of {exp.suspect}{by}" + (f" ({exp.check})" if exp.check else "")
        e = reports[0]
        detail = f"{e['actor']} reported {e['suspect']} ({e['check']}) at t={e['t_s']:.2f} s"
        if exp.window_s is not None and not exp.window_s[0] <= e["t_s"] <= exp.window_s[1]:
            return False, detail + f"; expected within {exp.window_s[0]:.2f}-{exp.window_s[1]:.2f} s"
        return True, detail
    if isinstance(exp, TravelTimeExpectation):
        return _travel_time(exp, events, baseline_ran="baseline" in metrics)
    if isinstance(exp, PositioningExpectation):
        changes = [e for e in events if e["type"] == "positioning" and e["variant"] == v and e["actor"] == exp.actor]
        lo, hi = exp.window_s
        hits = [e for e in changes if e["state"] == exp.state and lo <= e["t_s"] <= hi]
        if hits:
            e = hits[0]
            sigma = "unknown" if e["sigma_m"] is None else f"{e['sigma_m']} m"
            return True, f"{exp.actor} entered {exp.state} at t={e['t_s']:.2f} s (reported sigma {sigma})"
        seen = ", ".join(f"{e['state']}@{e['t_s']:.1f}" for e in changes) or "none"
        return False, f"{exp.actor} did not enter {exp.state} within {lo:.1f}-{hi:.1f} s (states: {seen})"
    if isinstance(exp, StringStableExpectation):
        return _string_stability(exp, metrics.get(v, {}))
    if isinstance(exp, MinGapExpectation | MaxDecelExpectation | StaysOnRouteExpectation):
        return _safety(exp, metrics.get(v, {}))
    if isinstance(exp, GapExpectation):
        return _gap(exp, metrics.get(v, {}))
    assert isinstance(exp, MetricExpectation)
    m = metrics.get(v, {})
    value: float | None
    if exp.metric == "delivery_ratio" and exp.link is not None:
        value = m.get("delivery_ratio_by_link", {}).get(exp.link)
    elif exp.metric == "delivery_ratio":
        value = m.get("delivery_ratio")
    elif exp.metric == "rejected":
        value = float(sum(m.get("rejected", {}).values()))
    elif exp.metric == "background_vehicles":
        value = m.get("background", {}).get("vehicles")
    elif exp.metric == "background_slowed":
        value = m.get("background", {}).get("slowed")
    elif exp.metric == "background_lane_changes":
        value = m.get("background", {}).get("lane_changes")
    elif exp.app is not None:  # the application latency (metrics.app_latency_ms): from trigger sent to warning
        value = m.get("app_latency_ms", {}).get(exp.app, {}).get(exp.metric.removeprefix("app_latency_ms_"))
    elif exp.metric == "perception_errors":  # the gross errors of every sender's RSM / SSM (v2x.sim.perception)
        errors = m.get("perception_errors")
        value = None if errors is None else sum(c[e] for c in errors.values() for e in PERCEPTION_ERROR_KINDS)
    elif exp.metric.startswith("data_age_ms_"):
        value = m.get("data_age_ms_by_message", {}).get(exp.message, {}).get(exp.metric.removeprefix("data_age_ms_"))
    elif exp.message is not None:
        value = m.get("latency_ms_by_message", {}).get(exp.message, {}).get(exp.metric.removeprefix("latency_ms_"))
    else:
        value = m.get("latency_ms", {}).get(exp.metric.removeprefix("latency_ms_"))
    name = exp.metric if exp.message is None else f"{exp.metric} of {exp.message.upper()}"
    if exp.link is not None:
        name = f"{exp.metric} of {exp.link.upper()}"
    if exp.app is not None:
        name = f"{exp.metric} of {exp.app.upper()}"
    if value is None:
        return False, f"{name} not measured in variant {v}"
    ok, bounds = _within(value, exp.min, exp.max)
    return ok, f"{name} = {value} (expected {bounds})"


def _passage_time(events: list[dict[str, Any]], variant: str, actor: str, at: list[float]) -> float | None:
    return next(
        (
            e["t_s"]
            for e in events
            if e["type"] == "passage" and e["variant"] == variant and e["actor"] == actor and e["at"] == at
        ),
        None,
    )


def travel_time(events: list[dict[str, Any]], variant: str, exp: TravelTimeExpectation) -> float | None:
    """``exp.actor``'s time from its passage of ``start_at`` to that of ``end_at`` in ``variant``, or None."""
    t0 = _passage_time(events, variant, exp.actor, [float(exp.start_at[0]), float(exp.start_at[1])])
    t1 = _passage_time(events, variant, exp.actor, [float(exp.end_at[0]), float(exp.end_at[1])])
    return None if t0 is None or t1 is None else round(t1 - t0, 3)


def _travel_time(exp: TravelTimeExpectation, events: list[dict[str, Any]], baseline_ran: bool) -> tuple[bool, str]:
    """``saves_s`` needs the baseline's travel time: when the baseline variant did not run at all (`v2x check
    --variant v2x`, the pytest plugin's items, which run one variant each), the saving is not judged and the
    expectation stands on its own bounds, saying so (a diff review: it always failed there); when the baseline
    ran and the actor did not pass both points in it, the expectation fails."""
    a, b = exp.start_at, exp.end_at
    span = f"({a[0]:g}, {a[1]:g}) to ({b[0]:g}, {b[1]:g})"
    took = travel_time(events, exp.variant, exp)
    if took is None:
        return False, f"{exp.actor} did not pass both {span}"
    ok, bounds = _within(took, exp.min_s, exp.max_s)
    detail = f"{exp.actor} took {took:.2f} s from {span}" + (f"; expected {bounds}" if bounds else "")
    if exp.saves_s is not None and not baseline_ran:
        detail += f"; the saving (expected >= {_bound(exp.saves_s)} s) not judged: the baseline variant did not run"
    elif exp.saves_s is not None:
        base = travel_time(events, "baseline", exp)
        if base is None:
            return False, detail + "; no baseline travel time to compare with"
        saved = round(base - took, 3)
        ok = ok and saved >= exp.saves_s
        detail += f"; {saved:.2f} s less than the baseline's {base:.2f} s (expected >= {_bound(exp.saves_s)})"
    return ok, detail


def _string_stability(exp: StringStableExpectation, m: dict[str, Any]) -> tuple[bool, str]:
    """``string_stable``: from the second follower on, each follower's largest gap error is at most its
    predecessor's x (1 + tolerance); ``string_unstable``: not so. From the referee's measurement (metrics)."""
    window = [float(exp.window_s[0]), float(exp.window_s[1])]
    found = next(
        (s for s in m.get("string_stability", []) if s["actors"] == list(exp.actors) and s["window_s"] == window),
        None,
    )
    if found is None:
        return False, f"string stability of {', '.join(exp.actors)} not measured in variant {exp.variant}"
    errors = [found["max_gap_error_m"][a] for a in exp.actors[1:]]
    growing = [
        f"{exp.actors[k + 2]} {b} m > {a} m x {1 + exp.tolerance:g}"
        for k, (a, b) in enumerate(itertools.pairwise(errors))
        if b > a * (1 + exp.tolerance)
    ]
    measured = ", ".join(f"{a} {e} m" for a, e in zip(exp.actors[1:], errors, strict=True))
    ratios = ", ".join(f"{r:g}" if r is not None else "-" for r in found["amplification"])
    detail = f"max |gap error| {measured} (amplification {ratios}) in {window[0]:g}-{window[1]:g} s"
    stable = not growing
    if exp.type == "string_stable":
        return stable, detail + ("" if stable else "; grows: " + "; ".join(growing))
    return not stable, detail + ("; grows: " + "; ".join(growing) if growing else "; does not grow")


def _where(found: dict[str, Any]) -> str:
    return f"at t={found['t_s']:.2f} s at ({found['at'][0]:.1f}, {found['at'][1]:.1f})"


def _safety(
    exp: MinGapExpectation | MaxDecelExpectation | StaysOnRouteExpectation, m: dict[str, Any]
) -> tuple[bool, str]:
    """``min_gap``, ``max_decel`` and ``stays_on_route``: from the world's measurement (metrics ``min_gap``,
    ``max_decel``, ``route_offset``; v2x.sim.safety)."""
    if isinstance(exp, MinGapExpectation):
        pair = sorted(exp.actors)
        found = next((g for g in m.get("min_gap", []) if g["actors"] == pair), None)
        if found is None or found["gap_m"] is None:
            return False, f"gap between {' and '.join(exp.actors)} not measured in variant {exp.variant}"
        gap = found["gap_m"]
        detail = f"smallest gap {' - '.join(pair)} {gap:.2f} m {_where(found)}; expected >= {_bound(exp.min_m)} m"
        if gap <= 0:
            return False, detail + " (their boxes touched)"
        return gap >= exp.min_m, detail
    if isinstance(exp, MaxDecelExpectation):
        found = next((d for d in m.get("max_decel", []) if d["actor"] == exp.actor), None)
        if found is None:
            return False, f"deceleration of {exp.actor} not measured in variant {exp.variant}"
        if found["decel_mps2"] is None:
            return True, f"{exp.actor} never slowed down; expected <= {_bound(exp.max_mps2)} m/s^2"
        decel = found["decel_mps2"]
        detail = f"{exp.actor}'s strongest deceleration {decel:.2f} m/s^2 {_where(found)}"
        return decel <= exp.max_mps2, detail + f"; expected <= {_bound(exp.max_mps2)} m/s^2"
    found = next((r for r in m.get("route_offset", []) if r["actor"] == exp.actor), None)
    if found is None or found["offset_m"] is None:
        return False, f"route offset of {exp.actor} not measured in variant {exp.variant}"
    offset = found["offset_m"]
    detail = f"{exp.actor}'s largest offset from its route {offset:.2f} m {_where(found)}"
    return offset <= exp.max_offset_m, detail + f"; expected <= {_bound(exp.max_offset_m)} m"


def _gap(exp: GapExpectation, m: dict[str, Any]) -> tuple[bool, str]:
    """``gap``: the measure of ``actor``'s gap to ``other`` in the window is within the bounds. From the
    referee's measurement (metrics)."""
    window = [float(exp.window_s[0]), float(exp.window_s[1])]
    found = next(
        (
            g
            for g in m.get("gaps", [])
            if g["actor"] == exp.actor and g["other"] == exp.other and g["window_s"] == window
        ),
        None,
    )
    span = f"{exp.actor} behind {exp.other} in {window[0]:g}-{window[1]:g} s"
    if found is None or found[exp.measure] is None:
        return False, f"{exp.measure} of {span} not measured in variant {exp.variant}"
    value = found[exp.measure]
    ok, bounds = _within(value, exp.min, exp.max)
    gaps = f"gap {found['smallest_m']}-{found['largest_m']} m"
    times = "" if found["smallest_s"] is None else f", time gap {found['smallest_s']}-{found['largest_s']} s"
    return ok, f"{exp.measure} {value} (expected {bounds}): {span}, {gaps}{times}"


def evaluate(
    scenario: Scenario, events: list[dict[str, Any]], metrics: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each expectation of a variant that ran (one with metrics: `--variant` runs some only) judged."""
    out = []
    outside = frozenset(a.id for a in scenario.actors if a.external)
    for exp in scenario.expectations:
        if exp.variant not in metrics:
            continue
        passed, detail = check(exp, events, metrics, outside)
        out.append({"name": exp.name, "variant": exp.variant, "passed": passed, "detail": detail})
    return out


# An actor that failed the world in more than this share of a variant's ticks fails the run, under a check of
# its own (ACTOR_SHARE_CHECKS): the verdicts about it do not describe its stack.
BAD_TICK_SHARE_MAX = 0.1

# (metric: per actor, the ticks it failed; the check's name; what those ticks mean for the run)
ACTOR_SHARE_CHECKS = (
    # Its report was missing when the tick closed (real time: its stack missed the deadline): the world kept
    # its last reported state (an outside review: a stack late every tick never moved from its start, and
    # "the warned driver avoids the crash" passed). A fleet's too, by its name (fleet-0): its vehicles sent no
    # BSM in those ticks (attack review 7: a fleet that lost one input fell silent for good, and the run passed).
    # Never in lockstep, where the world waits.
    (
        "late_reports_by_actor",
        "reports in time",
        "ticks closed without its report (its truth and warnings of those ticks were not applied in time; a "
        "fleet's: its vehicles' BSMs and warnings)",
    ),
    # A signed run (--secure): the signature checks refused its envelopes (unsigned, or keys not of this run),
    # so what it sent reached nobody. Only the actor itself can publish on its tx topic there (the broker's
    # grants): a forger cannot fail it this way.
    (
        "unverified_ticks_by_actor",
        "envelopes verified",
        "ticks had its envelopes refused by the signature checks (unsigned, or signed with keys that are not "
        'this run\'s: docs/PROTOCOL.md "Signed envelopes"), so what it sent reached nobody',
    ),
    # An outside stack (external: true): the world refused its envelopes (bad_time, bad_seq, ... for another
    # reason than the signature checks: rejected_by_outside_actor has the reasons), so what it sent reached
    # nobody (an outside review: a stack that stated its times in ms had its every BSM refused, and the run
    # passed). Only ticks in which the world kept fewer of its envelopes than its Ack claims: junk or forgeries
    # from anyone on its tx topic beyond that do not count (attack review 13).
    (
        "refused_tx_ticks_by_actor",
        "envelopes accepted",
        'ticks had envelopes of its refused by the world (docs/PROTOCOL.md "Topics"), so what it sent there reached '
        "nobody",
    ),
)


# The metric that holds the reasons of a row's refusals, per actor (its detail names them)
REASONS_OF = {"refused_tx_ticks_by_actor": "rejected_by_outside_actor"}


def actor_share_checks(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A failed check per variant, actor and row of ``ACTOR_SHARE_CHECKS`` whose metric counts more than
    ``BAD_TICK_SHARE_MAX`` of the variant's ticks."""
    out = []
    for variant, m in metrics.items():
        ticks = int(m.get("ticks") or 0)
        for key, name, meaning in ACTOR_SHARE_CHECKS:
            for actor, bad in m.get(key, {}).items():
                if ticks and bad > BAD_TICK_SHARE_MAX * ticks:
                    detail = f"{actor}: {bad} of {ticks} {meaning}; more than {BAD_TICK_SHARE_MAX:.0%} fails the run"
                    if reasons := m.get(REASONS_OF.get(key, ""), {}).get(actor):
                        detail += f" (refused: {', '.join(f'{n} {why}' for why, n in reasons.items())})"
                    out.append({"name": name, "variant": variant, "passed": False, "detail": detail})
    return out


def motion_checks(events: list[dict[str, Any]], metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A failed "truth in motion" per variant and actor whose reported truth moved as no vehicle can in any tick
    (``implausible_motion_by_actor``; ``v2x.sim.motion``'s rules, as ``v2x conformance``'s): the referee judged
    collisions, red lights and stops on truths that no vehicle could have had, so its verdicts about the actor
    do not describe a vehicle. The detail gives the first discrepancy (its ``implausible_motion`` event)."""
    out = []
    for variant, m in metrics.items():
        for actor, bad in m.get("implausible_motion_by_actor", {}).items():
            mine = (e for e in events if e["type"] == "implausible_motion" and e["variant"] == variant)
            first = next((e for e in mine if e["actor"] == actor), None)
            detail = (
                f"{actor}: {bad} tick(s) whose reported truth moves as no vehicle can"
                + (f"; the first, at {first['t_s']:g} s: {first['problem']}" if first else "")
                + ' (docs/PROTOCOL.md "Truth": the position moves as the speeds say, the height by at most'
                f" {MAX_GRADE:.0%} of it, the speed changes by at most {MAX_SPEED_CHANGE_MPS2:g} m/s^2; v2x conformance"
                " lists every tick)"
            )
            out.append({"name": "truth in motion", "variant": variant, "passed": False, "detail": detail})
    return out


def build_result(
    scenario: Scenario,
    seed: int,
    events: list[dict[str, Any]],
    metrics: dict[str, dict[str, Any]],
    run_info: dict[str, Any],
    *,
    scene: dict[str, Any] | None = None,
    tracks: dict[str, dict[str, list[list[float]]]] | None = None,
) -> dict[str, Any]:
    """The result document; ``scene`` (the road and RSUs) and ``tracks`` (each variant's road-user paths)
    are what the report's map draws (v2x/run/tracks.py)."""
    events = sorted(events, key=event_order)
    expectations = evaluate(scenario, events, metrics) + actor_share_checks(metrics) + motion_checks(events, metrics)
    doc = {
        "scenario": scenario.id,
        "seed": seed,
        "passed": all(e["passed"] for e in expectations),
        "expectations": expectations,
        "events": events,
        "metrics": metrics,
        "run": run_info,
        "flagged": flagged(metrics),
    }
    if scene is not None:
        doc["map"] = scene
    if tracks is not None:
        doc["tracks"] = tracks
    return doc


def flagged(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The actors whose reports conflicted tick after tick (two stacks drive them, or someone forges their
    messages; docs/SECURITY.md), or whose deliveries were cut from others' inputs tick after tick (they flood),
    per variant: the run's outcome for them, or for those they flooded, is not to be trusted."""
    return [
        {"variant": variant, "actor": actor, "conflicts": counts}
        for variant, m in metrics.items()
        for actor, counts in m.get("flagged", {}).items()
    ]


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """The deterministic part of a result."""
    return {k: result[k] for k in OUTCOME_KEYS}


def regular_size(path: Path) -> int | None:
    """``path``'s size if it is a regular file (a symlink to one counts), else None: a FIFO, a device or a
    socket, which a command must not open to read (opening a FIFO waits for a writer for good: v2x report,
    the golden records and v2x replay each did). OSError if it cannot be looked at."""
    st = path.stat()
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``path`` whole or not at all: a temporary file in the same directory, flushed to disk, then
    renamed over ``path``. On any error (a full disk: OSError ENOSPC) the old file is left as it was, the
    temporary file is removed and the error raised. A ``path`` that is a device, a FIFO or a socket is
    written into, as a shell's ``>`` does (``--junit /dev/null``); renaming over it replaced it, and as root
    replaced the system's ``/dev/null`` (attack review 2). A symlink is replaced, never followed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = 0
    if mode and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
        with open(path, "wb") as f:
            f.write(raw)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return replace_whole(path, raw)


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir/<scenario>/result.json``, atomically; strict JSON (a NaN or an infinity raises ValueError:
    the world never lets one into a result)."""
    path = out_dir / str(result["scenario"]) / "result.json"
    return write_atomic(path, json.dumps(result, indent=2, sort_keys=False, allow_nan=False) + "\n")


def variant_wall_s(result: dict[str, Any], variant: str, wall_s: float) -> float:
    """A variant's own wall seconds (its metrics'), else its share of the scenario's ``wall_s``: JUnit adds the
    cases' times up, and each variant carried the whole scenario's (a newcomer review: the total doubled)."""
    metrics = result.get("metrics", {})
    mine = metrics.get(variant, {}).get("wall_seconds")
    return float(mine) if isinstance(mine, int | float) else wall_s / max(len(metrics), 1)


def write_junit(results: list[dict[str, Any]], path: Path, *, errors: Sequence[tuple[str, str]] = ()) -> Path:
    """A JUnit XML report: one ``testsuite`` per scenario, one ``testcase`` per expectation (classname
    ``<scenario>.<variant>``), a ``failure`` carrying the detail when it did not hold. Each of ``errors``
    (scenario id, message) adds a suite for a scenario whose run could not complete. A suite's time is the
    scenario's wall seconds; an expectation's, its variant's wall seconds (:func:`variant_wall_s`) split
    evenly among that variant's expectations (each case had the scenario's split evenly among all of them,
    the same figure for every case: a newcomer review)."""
    root = ET.Element("testsuites", name="v2x-testbed")
    for result in results:
        exps = result["expectations"]
        wall = float(result["run"].get("wall_seconds", 0.0))
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{result['scenario']} (seed {result['seed']})",
            tests=str(len(exps)),
            failures=str(sum(not e["passed"] for e in exps)),
            errors="0",
            time=f"{wall:.3f}",
        )
        per_variant = Counter(e["variant"] for e in exps)
        took = {  # (a result without metrics: its variants share the scenario's time)
            v: variant_wall_s(result, v, wall) if result.get("metrics") else wall / len(per_variant)
            for v in per_variant
        }
        for exp in exps:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{result['scenario']}.{exp['variant']}",
                name=exp["name"],
                time=f"{took[exp['variant']] / per_variant[exp['variant']]:.3f}",
            )
            if exp["passed"]:
                ET.SubElement(case, "system-out").text = exp["detail"]
            else:
                ET.SubElement(case, "failure", message=exp["detail"]).text = exp["detail"]
    for scenario_id, message in errors:
        suite = ET.SubElement(root, "testsuite", name=scenario_id, tests="1", failures="0", errors="1", time="0")
        case = ET.SubElement(suite, "testcase", classname=scenario_id, name="run")
        ET.SubElement(case, "error", message=message).text = message
    return write_atomic(path, ET.tostring(xml_safe(root), encoding="utf-8", xml_declaration=True))
