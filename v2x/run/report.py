"""A self-contained HTML report of scenario results (``v2x run --html FILE``, ``v2x report``).

One file, no scripts and nothing fetched: inline CSS and SVG, so it can be archived as a CI artifact and
opened anywhere. It shows, per scenario: the verdict, every expectation with its detail, a timeline of
what happened to whom (warnings and advice by app, collisions, red-light violations, stops, positioning
state changes; hover a mark for its details) for each variant side by side, a map (the road, the RSUs and
their ranges, the road events' hazard zones, both variants' tracks and the events where they happened;
from the result's ``map`` and ``tracks``) and the service metrics.

The page is a pure function of the result documents (v2x.results): the same results give the same bytes.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from v2x import __version__
from v2x.apps.registry import figures, registered, time_label
from v2x.run.results import regular_size, write_atomic
from v2x.text import printable

__all__ = ["ReportInputError", "load_results", "render_html", "result_problem", "strict_json", "write_html"]

# Timeline marks: shape and colour per event (and per app for warnings: the app's declared colour).
APP_COLOURS = {spec.name: spec.colour for spec in registered().values()}
DEFAULT_APP_COLOUR = "#1f77b4"
# Figures a warning event may carry (v2x.results), shown in its mark's details: its ``ttc_s`` (labelled as the
# app labels it: TTC, or TTI for a time to reach; AppSpec.time_label), then the figures apps declare.
WARNING_FIGURES = tuple((f.name, f.label, f.unit) for f in figures())
ROW_H = 22
LABEL_W = 120
PLOT_W = 640
PAD = 8
MAP_W = 760  # the map's width in px; its height follows the drawn area (MAP_H_MIN to MAP_H_MAX)
MAP_H_MIN = 160
MAP_H_MAX = 480
# What the map draws of ``map`` (v2x/run/tracks.py): per list, the fields it reads and their shapes.
MAP_SHAPES: dict[str, dict[str, str]] = {
    "lanes": {"centerline": "line", "width_m": "size"},
    "intersections": {"center": "point", "radius_m": "size"},
    "obstacles": {"polygon": "line"},
    "zones": {"polygon": "line"},
    "paths": {"path": "line"},
    "rsus": {"position": "point", "range_m": "size"},
    "rsi": {"position": "point", "radius_m": "size"},  # (radius_m: a road event's hazard zone; since session 18)
}
# Track colours, by actor (in sorted order); the v2x variant is drawn solid, the others dashed.
TRACK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


# A ``v2x sweep --out`` summary (v2x.run.sweep.SweepSummary.document) is told apart from a run's result by these.
SWEEP_KEYS = frozenset({"seeds", "apps", "collision_rate", "failed_seeds"})
SWEEP_SUMMARY = (
    "a v2x sweep summary (rates over seeds), not the result of a run, which is what v2x report draws: "
    "'v2x sweep ... --svg FILE' draws a sweep's rates and lead times, and 'v2x run SCENARIO --seed N "
    "[--positioning P] [--network P] --html FILE' draws one of its seeds' runs"
)


class ReportInputError(ValueError):
    """A result file that is missing, not JSON, or not a v2x result document."""


MAX_RESULT_BYTES = 64 * 1024 * 1024  # a result.json is kilobytes; beyond this it is not one of ours
MAX_EVENTS = 200_000  # per result (the shipped scenarios make dozens)
MAX_TIME_S = 1e7  # event times and simulated seconds (a run is at most an hour)
MAX_DEPTH = 64  # nesting levels in a result document (it has five)
MAX_POINTS = 500_000  # map and track points per result (a shipped scenario has a few hundred)
MAX_OUTSIDE_ROWS = 64  # rows of the table of outside stacks (run.outside_stacks: an actor and variant each)
MAX_SOFTWARE_SHOWN = 200  # characters of a stack's software shown (the run writes at most 128)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a result holds")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


def _depth(doc: object, limit: int) -> bool:
    """Whether ``doc`` nests at most ``limit`` levels (iteratively: a deep document must not recurse)."""
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return True


def strict_json(text: str) -> Any:
    """``text`` as JSON as a result document holds it: no NaN or Infinity, numbers in range, at most
    MAX_DEPTH levels. Raises ValueError saying what is wrong (for a message after the file's name)."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply to be a result document") from exc
    except ValueError as exc:  # NaN, Infinity, 1e400, an integer of 5000 digits
        raise ValueError(f"not a v2x result document: {exc}") from exc


def load_results(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Result documents from ``result.json`` files or directories holding them (searched recursively),
    sorted by scenario id. Raises ReportInputError naming the file and what is wrong: anything that is not
    a result document as ``v2x run`` writes it (strict JSON: no NaN or Infinity, numbers in range, the
    fields the page shows of the types it shows)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.rglob("result.json"))
            if not found:
                raise ReportInputError(f"{p}: no result.json below this directory")
            files += found
        else:
            files.append(p)
    # the same file named twice (a directory and a file in it; a link) counts once: a newcomer review's
    # report said "3 result(s)" for two
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    results = []
    for f in unique.values():
        try:
            size = regular_size(f)
            if size is None:  # (a FIFO named result.json blocked the command for good)
                raise ReportInputError(f"{f}: not a regular file: not a result document")
            if size > MAX_RESULT_BYTES:
                raise ReportInputError(f"{f}: larger than {MAX_RESULT_BYTES >> 20} MiB: not a result document")
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReportInputError(f"{f}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ReportInputError(f"{f}: not UTF-8 text") from exc
        try:
            doc = strict_json(text)
        except ValueError as exc:
            raise ReportInputError(f"{f}: {exc}") from exc
        # (a sweep summary said "field 'seed' missing": an outside review)
        if isinstance(doc, dict) and doc.keys() >= SWEEP_KEYS and "seed" not in doc:
            raise ReportInputError(f"{f}: {SWEEP_SUMMARY}")
        problem = result_problem(doc)
        if problem:
            raise ReportInputError(f"{f}: not a v2x result document: {problem}")
        results.append(doc)
    return sorted(results, key=lambda r: (str(r["scenario"]), int(r["seed"])))


def _num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= MAX_TIME_S * 1e3


def _counts(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _num(v) for k, v in value.items())


def metrics_problem(variant: str, m: object) -> str:
    if not isinstance(m, dict):
        return f"metrics.{variant}: expected an object"
    for key in ("delivery_ratio", "wall_seconds", "sim_seconds"):
        if m.get(key) is not None and not _num(m[key]):
            return f"metrics.{variant}.{key}: expected a number"
    if not _counts(m.get("rejected", {})):
        return f"metrics.{variant}.rejected: expected counts"
    by_agents = m.get("rejected_by_agents", {})
    if not isinstance(by_agents, dict) or not all(_counts(c) for c in by_agents.values()):
        return f"metrics.{variant}.rejected_by_agents: expected counts per agent"
    msgs = m.get("messages", {})
    if not isinstance(msgs, dict) or not all(_counts(msgs.get(k, {})) for k in ("sent", "delivered", "dropped")):
        return f"metrics.{variant}.messages: expected sent, delivered and dropped counts"
    lats = [m.get("latency_ms", {})]
    for key in ("latency_ms_by_channel", "latency_ms_by_message", "app_latency_ms"):
        group = m.get(key, {})
        if not isinstance(group, dict):
            return f"metrics.{variant}.{key}: expected an object"
        lats += list(group.values())
    for lat in lats:
        if not isinstance(lat, dict) or not all(v is None or _num(v) for v in lat.values()):
            return f"metrics.{variant}: latency summaries must be numbers or null"
    return ""


def event_problem(k: int, e: object) -> str:
    if not isinstance(e, dict) or "type" not in e:
        return f"events[{k}]: expected t_s and type"
    t = e.get("t_s")
    if not _num(t):
        return f"events[{k}]: expected t_s and type"
    if not -MAX_TIME_S <= float(t) <= MAX_TIME_S:  # type: ignore[arg-type]
        return f"events[{k}]: expected t_s and type, with t_s within {MAX_TIME_S:g} s"
    for key in ("relative_speed_mps", "speed_mps"):
        if key in e and not _num(e[key]):
            return f"events[{k}].{key}: expected a number"
    if e["type"] == "collision" and not isinstance(e.get("actors", []), list):
        return f"events[{k}].actors: expected a list"
    if e["type"] == "passage" and "at" in e and not (isinstance(e["at"], list) and len(e["at"]) >= 2):
        return f"events[{k}].at: expected [x, y]"
    return ""


def result_problem(doc: object) -> str:
    """What makes ``doc`` not a result document as ``v2x run`` writes it ("" if nothing): the fields the page
    shows, of the types it shows, within the limits above; and ``passed`` the verdict of the expectations
    (every one held), as v2x.run.results writes it, so that no page shows PASS over a failed expectation."""
    if not isinstance(doc, dict):
        return "expected a JSON object"
    if not _depth(doc, MAX_DEPTH):
        return f"nested deeper than {MAX_DEPTH} levels"
    for key, kind in (("scenario", str), ("seed", int), ("passed", bool), ("expectations", list), ("events", list)):
        if not isinstance(doc.get(key), kind) or (key == "seed" and isinstance(doc["seed"], bool)):
            return f"field '{key}' missing or not a {kind.__name__}"
    if not isinstance(doc.get("metrics"), dict):
        return "field 'metrics' missing or not an object"
    for k, e in enumerate(doc["expectations"]):
        if not isinstance(e, dict) or not {"name", "variant", "passed", "detail"} <= e.keys():
            return f"expectations[{k}]: expected name, variant, passed and detail"
        for key, kind in (("name", str), ("variant", str), ("passed", bool), ("detail", str)):
            if not isinstance(e[key], kind):
                return f"expectations[{k}].{key}: expected {'true or false' if kind is bool else 'text'}"
    held = all(e["passed"] for e in doc["expectations"])
    if doc["passed"] != held:
        return (
            f"'passed' is {json.dumps(doc['passed'])} but "
            + ("every expectation held" if held else "an expectation failed")
            + " ('passed' is true exactly when every expectation held)"
        )
    if len(doc["events"]) > MAX_EVENTS:
        return f"{len(doc['events'])} events (at most {MAX_EVENTS})"
    for k, e in enumerate(doc["events"]):
        problem = event_problem(k, e)
        if problem:
            return problem
    for variant, m in doc["metrics"].items():
        problem = metrics_problem(variant, m)
        if problem:
            return problem
    return _map_problem(doc.get("map", {}), doc.get("tracks", {}))


def _xy(p: object, n: int = 2) -> bool:
    return isinstance(p, list) and len(p) == n and all(_num(v) for v in p)


def _map_problem(scene: object, tracks: object) -> str:
    """The map and tracks are optional (result files of older versions have none), but drawn only if whole."""
    if not isinstance(scene, dict):
        return "field 'map': expected an object"
    points = 0
    for key, shape in MAP_SHAPES.items():
        items = scene.get(key, [])
        if not isinstance(items, list):
            return f"map.{key}: expected a list"
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                return f"map.{key}[{k}]: expected an object"
            for field, kind in shape.items():
                value = item.get(field)
                if kind == "line" and not (isinstance(value, list) and len(value) >= 2 and all(map(_xy, value))):
                    return f"map.{key}[{k}].{field}: expected a list of [x, y] points"
                if kind == "point" and not _xy(value):
                    return f"map.{key}[{k}].{field}: expected [x, y]"
                if kind == "size" and value is not None and not (_num(value) and value >= 0):
                    return f"map.{key}[{k}].{field}: expected a length in m or null"
                points += len(value) if isinstance(value, list) and kind == "line" else 1
    if not isinstance(tracks, dict):
        return "field 'tracks': expected an object"
    for variant, by_actor in tracks.items():
        if not isinstance(by_actor, dict):
            return f"tracks.{variant}: expected an object"
        for actor, track in by_actor.items():
            if not isinstance(track, list) or not all(_xy(p, 3) for p in track):
                return f"tracks.{variant}.{actor}: expected a list of [t, x, y]"
            points += len(track)
    if points > MAX_POINTS:
        return f"{points} map and track points (at most {MAX_POINTS})"
    return ""


def write_html(results: Sequence[dict[str, Any]], path: Path, *, errors: Sequence[tuple[str, str]] = ()) -> Path:
    """The report page, written atomically (the old page stays if writing fails)."""
    return write_atomic(path, render_html(results, errors=errors))


def _e(value: object) -> str:
    """``value`` as HTML text: escaped, and every control or formatting character shown as its escape (an
    outside stack's warning text put raw ESC, BEL and U+202E, which reorders what follows, into the timeline:
    attack review 12)."""
    return html.escape(printable(str(value)), quote=True)


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def render_html(results: Sequence[dict[str, Any]], *, errors: Sequence[tuple[str, str]] = ()) -> str:
    """The report page for ``results`` (and scenarios whose run could not complete: ``errors``)."""
    n_pass = sum(bool(r["passed"]) for r in results)
    verdict = "PASS" if results and n_pass == len(results) and not errors else "FAIL"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"/>',
        f"<title>v2x-testbed report: {verdict}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>v2x-testbed report <span class='badge {verdict.lower()}'>{verdict}</span></h1>",
        f"<p class='meta'>{len(results) + len(errors)} scenario(s): {n_pass} passed, {len(results) - n_pass} failed, "
        f"{len(errors)} could not run; "
        f"v2x-testbed {_e(__version__)}</p>",
        _summary(results, errors),
    ]
    for sid, message in errors:
        parts.append(f"<section id='{_e(sid)}'><h2>{_e(sid)} <span class='badge error'>RUN ERROR</span></h2>")
        parts.append(f"<pre class='error'>{_e(message)}</pre></section>")
    for r in results:
        parts.append(_scenario(r))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _anchor(r: dict[str, Any]) -> str:
    return f"{r['scenario']}-s{r['seed']}"


def _summary(results: Sequence[dict[str, Any]], errors: Sequence[tuple[str, str]]) -> str:
    rows = [
        "<table class='summary'><tr><th>scenario</th><th>seed</th><th>result</th><th>expectations</th>"
        "<th>variant</th><th>delivery ratio</th><th>latency p99 ms</th><th>rejected</th><th>wall s</th></tr>"
    ]
    for r in results:
        exps = r["expectations"]
        held = sum(bool(e["passed"]) for e in exps)
        variants = list(r["metrics"].items()) or [("-", {})]
        span = len(variants)
        badge = "pass" if r["passed"] else "fail"
        for k, (variant, m) in enumerate(variants):
            cells = []
            if k == 0:
                cells += [
                    f"<td rowspan='{span}'><a href='#{_e(_anchor(r))}'>{_e(r['scenario'])}</a></td>",
                    f"<td rowspan='{span}'>{_e(r['seed'])}</td>",
                    f"<td rowspan='{span}'><span class='badge {badge}'>{badge.upper()}</span></td>",
                    f"<td rowspan='{span}'>{held} / {len(exps)}</td>",
                ]
            rejected = sum(m.get("rejected", {}).values()) + sum(
                sum(v.values()) for v in m.get("rejected_by_agents", {}).values()
            )
            cells += [
                f"<td>{_e(variant)}</td>",
                f"<td>{_fmt(m.get('delivery_ratio', '-'), 4)}</td>",
                f"<td>{_fmt(m.get('latency_ms', {}).get('p99', '-'))}</td>",
                f"<td>{rejected}</td>",
                f"<td>{_fmt(m.get('wall_seconds', '-'))}</td>",
            ]
            rows.append("<tr>" + "".join(cells) + "</tr>")
    for sid, _ in errors:
        rows.append(
            f"<tr><td><a href='#{_e(sid)}'>{_e(sid)}</a></td><td></td><td><span class='badge error'>"
            "RUN ERROR</span></td><td colspan='6'></td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _scenario(r: dict[str, Any]) -> str:
    badge = "pass" if r["passed"] else "fail"
    out = [
        f"<section id='{_e(_anchor(r))}'>",
        f"<h2>{_e(r['scenario'])} (seed {_e(r['seed'])}) <span class='badge {badge}'>{badge.upper()}</span></h2>",
    ]
    out.append(_outside_stacks(r))
    out.append("<table class='exp'><tr><th>variant</th><th>expectation</th><th>result</th><th>detail</th></tr>")
    for e in r["expectations"]:
        ok = "pass" if e["passed"] else "fail"
        out.append(
            f"<tr class='{ok}'><td>{_e(e['variant'])}</td><td>{_e(e['name'])}</td>"
            f"<td><span class='badge {ok}'>{ok.upper()}</span></td><td>{_e(e['detail'])}</td></tr>"
        )
    out.append("</table>")
    if r.get("map") or r.get("tracks"):
        out.append(
            "<figure><figcaption>map: the road, RSUs (dashed: declared range), road events (orange: the hazard "
            "zone an RSU announces), where each road user went (solid: with V2X, dashed: baseline) and where "
            "things happened</figcaption>"
        )
        out.append(_map(r))
        out.append("</figure>")
    variants = list(r["metrics"]) or sorted({str(ev.get("variant", "")) for ev in r["events"]})
    out.append("<div class='timelines'>")
    for variant in variants:
        events = [ev for ev in r["events"] if ev.get("variant") == variant]
        sim_s = float(r["metrics"].get(variant, {}).get("sim_seconds") or 0.0)  # null: as 0 (the loader allows it)
        out.append(f"<figure><figcaption>{_e(variant)}: what happened, to whom</figcaption>")
        out.append(_timeline(events, sim_s))
        out.append("</figure>")
    out.append("</div>")
    out.append(_legend(str(ev.get("app", "")) for ev in r["events"] if ev.get("type") == "warning"))
    for variant, m in r["metrics"].items():
        out.append(_metrics(variant, m))
    out.append("</section>")
    return "\n".join(out)


def _outside_stacks(r: dict[str, Any]) -> str:
    """What was under test: the actors outside stacks drove in each variant and the software their Hello named
    (the result's ``run.outside_stacks``); "" for a run without. The file may be anyone's: what is not of that
    shape is left out, the rest escaped and bounded."""
    run = r.get("run")
    stacks = run.get("outside_stacks") if isinstance(run, dict) else None
    if not isinstance(stacks, dict):
        return ""
    rows = [
        f"<tr><td>{_e(actor)}</td><td>{_e(variant)}</td><td>{_e(printable(software)[:MAX_SOFTWARE_SHOWN])}</td></tr>"
        for actor, by_variant in stacks.items()
        if isinstance(by_variant, dict)
        for variant, software in by_variant.items()
        if isinstance(software, str)
    ][:MAX_OUTSIDE_ROWS]
    if not rows:
        return ""
    return (
        "<table class='outside'><caption>driven by outside stacks</caption>"
        "<tr><th>actor</th><th>variant</th><th>software (its Hello)</th></tr>" + "".join(rows) + "</table>"
    )


def _marks(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(actor row, shape, title) for one event; empty for events not drawn."""
    t = float(ev["t_s"])
    kind = ev["type"]
    if kind == "warning":
        app = str(ev.get("app", ""))
        extra = []
        for key, label, unit in (("ttc_s", time_label(app), "s"), *WARNING_FIGURES):
            if isinstance(ev.get(key), int | float):
                extra.append(f"{label} {float(ev[key]):.2f} {unit}")
        conflict = f" ({ev['conflict']})" if ev.get("conflict") else ""
        title = f"t={t:.2f} s {app.upper()} to {ev.get('target')} about {ev.get('other')}{conflict}"
        title += (", " + ", ".join(extra) if extra else "") + f"; sent by {ev.get('source')}"
        return [(str(ev.get("target")), f"warn:{app}", title)]
    if kind == "collision":
        actors = [str(a) for a in ev.get("actors", [])]
        speed = float(ev.get("relative_speed_mps", 0.0))
        title = f"t={t:.2f} s collision {' - '.join(actors)} at a relative speed of {speed:.2f} m/s"
        return [(a, "collision", title) for a in actors]
    if kind == "violation":
        title = f"t={t:.2f} s {ev.get('kind', 'violation')} by {ev.get('actor')} at {ev.get('intersection')}"
        return [(str(ev.get("actor")), "violation", title)]
    if kind == "stop":
        return [(str(ev.get("actor")), "stop", f"t={t:.2f} s {ev.get('actor')} stopped")]
    if kind == "passage":
        at = ev.get("at") or ["?", "?"]
        title = f"t={t:.2f} s {ev.get('actor')} passed ({at[0]}, {at[1]}) at {float(ev.get('speed_mps', 0.0)):.2f} m/s"
        return [(str(ev.get("actor")), "passage", title)]
    if kind == "positioning":
        title = f"t={t:.2f} s {ev.get('actor')} positioning {ev.get('state')}, sigma {ev.get('sigma_m')} m"
        return [(str(ev.get("actor")), "positioning", title)]
    if kind == "misbehaviour":
        title = f"t={t:.2f} s {ev.get('actor')} judged {ev.get('suspect')} misbehaving ({ev.get('check')})"
        return [(str(ev.get("actor")), "misbehaviour", title)]
    return []


def _timeline(events: list[dict[str, Any]], sim_s: float) -> str:
    drawn: list[tuple[float, str, str, str]] = []
    last_state: dict[str, object] = {}
    for ev in events:
        if ev["type"] == "positioning":  # draw state changes only
            actor = str(ev.get("actor"))
            if last_state.get(actor) == ev.get("state"):
                continue
            last_state[actor] = ev.get("state")
        drawn += [(float(ev["t_s"]), row, shape, title) for row, shape, title in _marks(ev)]
    rows = sorted({row for _, row, _, _ in drawn})
    t_end = max([sim_s, *(t for t, _, _, _ in drawn), 1.0])
    height = PAD * 2 + ROW_H * max(len(rows), 1) + 18
    width = LABEL_W + PLOT_W + PAD * 2
    svg = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img'>"
    ]
    if not rows:
        svg.append(f"<text x='{PAD}' y='{PAD + 14}' class='muted'>no events</text>")
    axis_y = PAD + ROW_H * max(len(rows), 1)

    def x_of(t: float) -> float:
        return LABEL_W + PLOT_W * t / t_end

    for k, row in enumerate(rows):
        y = PAD + ROW_H * k + ROW_H / 2
        svg.append(f"<text x='{LABEL_W - 6}' y='{y + 4:.1f}' text-anchor='end' class='actor'>{_e(row)}</text>")
        svg.append(f"<line x1='{LABEL_W}' y1='{y:.1f}' x2='{LABEL_W + PLOT_W}' y2='{y:.1f}' class='lane'/>")
    step = _tick_step(t_end)
    for k in range(13):  # at most 12 steps fit (bounded whatever the times are)
        t = k * step
        if not t <= t_end + 1e-9:
            break
        x = x_of(t)
        svg.append(f"<line x1='{x:.1f}' y1='{PAD}' x2='{x:.1f}' y2='{axis_y}' class='grid'/>")
        svg.append(f"<text x='{x:.1f}' y='{axis_y + 14}' text-anchor='middle' class='muted'>{t:g} s</text>")
    for t_ev, row, shape, title in drawn:
        x = x_of(t_ev)
        y = PAD + ROW_H * rows.index(row) + ROW_H / 2
        svg.append(f"<g class='mark {_e(shape.split(':')[0])}'><title>{_e(title)}</title>{_shape(shape, x, y)}</g>")
    svg.append("</svg>")
    return "".join(svg)


def _at(track: list[list[float]], t: float) -> tuple[float, float] | None:
    """Where a track was at ``t``: linear between its samples; None outside them."""
    if not track or t < track[0][0] or t > track[-1][0]:
        return None
    lo, hi = 0, len(track) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if track[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, x0, y0), (t1, x1, y1) = track[lo], track[hi]
    f = 0.0 if t1 <= t0 else min(max((t - t0) / (t1 - t0), 0.0), 1.0)
    return x0 + f * (x1 - x0), y0 + f * (y1 - y0)


MAP_UNMARKED = ("passage", "positioning")  # timeline marks the map does not draw


def _event_at(ev: dict[str, Any], tracks: dict[str, dict[str, list[list[float]]]]) -> tuple[float, float] | None:
    """Where the map draws an event's first mark (on its row's track at its time), or None."""
    for row, shape, _ in _marks(ev):
        if shape not in MAP_UNMARKED:
            where = _at(tracks.get(str(ev.get("variant", "")), {}).get(row, []), float(ev["t_s"]))
            if where is not None:
                return where
    return None


def _map(r: dict[str, Any]) -> str:
    """The scenario's map as inline SVG: lanes, intersections, obstacles, zones, RSUs with their declared
    range, RSI items (a road event's hazard zone as a labelled circle), each road user's track per variant
    and the events drawn where they happened."""
    scene: dict[str, Any] = r.get("map") or {}
    tracks: dict[str, dict[str, list[list[float]]]] = r.get("tracks") or {}
    xs: list[float] = []
    ys: list[float] = []

    def take(p: list[float]) -> None:
        xs.append(float(p[0]))
        ys.append(float(p[1]))

    # Frame what moved and what stands beside it (tracks, RSUs, obstacles, RSI items, intersections);
    # lanes and zones, often much longer, frame the map only when there is nothing else.
    for key in ("lanes", "zones", "intersections", "obstacles", "paths", "rsus", "rsi"):
        if key in ("lanes", "zones", "paths") and (tracks or xs):
            continue
        for item in scene.get(key, []):
            for field, kind in MAP_SHAPES[key].items():
                if kind == "line":
                    for p in item[field]:
                        take(p)
                elif kind == "point":
                    take(item[field])
            if key == "rsi" and item.get("radius_m"):  # a road event's whole zone
                (x, y), rad = item["position"], float(item["radius_m"])
                take([x - rad, y - rad])
                take([x + rad, y + rad])
    focus = [_event_at(ev, tracks) for ev in r.get("events", [])] if scene.get("intersections") else []
    if any(focus):
        # A crossing: frame its boxes and where things happened, not the whole tracks, which run off the
        # edges (newcomer 9: 25 s of tracks made a 32 m crossing a few pixels across).
        for i in scene["intersections"]:
            (x, y), rad = i["center"], float(i.get("radius_m") or 0.0)
            take([x - rad, y - rad])
            take([x + rad, y + rad])
        for where in focus:
            if where is not None:
                take(list(where))
    else:
        for by_actor in tracks.values():
            for track in by_actor.values():
                for _, x, y in track:
                    take([x, y])
    if not xs:
        for key in ("lanes", "zones", "paths"):
            for item in scene.get(key, []):
                for p in item[next(iter(MAP_SHAPES[key]))]:
                    take(p)
    if not xs:
        return "<p class='muted'>no map in this result</p>"
    pad_m = 15.0
    x0, x1 = min(xs) - pad_m, max(xs) + pad_m
    y0, y1 = min(ys) - pad_m, max(ys) + pad_m
    scale = min(MAP_W / max(x1 - x0, 1.0), MAP_H_MAX / max(y1 - y0, 1.0))
    height = max(MAP_H_MIN, round((y1 - y0) * scale))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def px(x: float, y: float) -> str:
        return f"{MAP_W / 2 + (x - cx) * scale:.1f},{height / 2 - (y - cy) * scale:.1f}"

    def poly(points: list[list[float]]) -> str:
        return " ".join(px(p[0], p[1]) for p in points)

    svg = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{MAP_W}' height='{height}' viewBox='0 0 {MAP_W} {height}' "
        "role='img' class='map'>",
        f"<rect width='{MAP_W}' height='{height}' fill='#fbfbf8'/>",
    ]
    for z in scene.get("zones", []):
        svg.append(
            f"<polygon points='{poly(z['polygon'])}' fill='#fdebd0' stroke='#e59866'><title>{_e(z.get('kind'))} "
            f"zone {_e(z.get('id'))}</title></polygon>"
        )
    for i in scene.get("intersections", []):
        (x, y), rad = i["center"], float(i.get("radius_m") or 0.0)
        c = px(x, y).split(",")
        svg.append(
            f"<circle cx='{c[0]}' cy='{c[1]}' r='{max(rad * scale, 2):.1f}' fill='#eeeeee' stroke='#cccccc'>"
            f"<title>intersection {_e(i.get('id'))}</title></circle>"
        )
    for lane in scene.get("lanes", []):
        width = max(float(lane.get("width_m") or 3.5) * scale, 1.0)
        svg.append(
            f"<polyline points='{poly(lane['centerline'])}' fill='none' stroke='#d5d5d5' stroke-width='{width:.1f}' "
            f"stroke-linejoin='round'><title>lane {_e(lane.get('id'))}</title></polyline>"
        )
        svg.append(
            f"<polyline points='{poly(lane['centerline'])}' fill='none' stroke='#ffffff' stroke-dasharray='6 6'/>"
        )
    for o in scene.get("obstacles", []):
        svg.append(
            f"<polygon points='{poly(o['polygon'])}' fill='#7f8c8d' stroke='#555'><title>obstacle {_e(o.get('id'))}"
            "</title></polygon>"
        )
    for rsu in scene.get("rsus", []):
        x, y = rsu["position"]
        c = px(x, y).split(",")
        cxf, cyf = float(c[0]), float(c[1])
        if rsu.get("range_m"):
            r_px = float(rsu["range_m"]) * scale
            svg.append(
                f"<circle cx='{c[0]}' cy='{c[1]}' r='{r_px:.1f}' fill='none' stroke='#555' stroke-dasharray='4 4'/>"
            )
            corners = [(0.0, 0.0), (MAP_W, 0.0), (0.0, height), (MAP_W, height)]
            if all(math.hypot(u - cxf, v - cyf) < r_px for u, v in corners):  # the whole map is inside it
                svg.append(
                    f"<text x='{cxf + 8:.1f}' y='{cyf + 14:.1f}' class='muted'>range "
                    f"{float(rsu['range_m']):g} m: beyond this map</text>"
                )
        svg.append(
            f"<g class='rsu'><title>RSU {_e(rsu.get('id'))}"
            + (f", range {float(rsu['range_m']):g} m" if rsu.get("range_m") else "")
            + f"</title><rect x='{cxf - 5:.1f}' y='{cyf - 5:.1f}' width='10' height='10' fill='#333'/>"
            f"<circle cx='{cxf:.1f}' cy='{cyf:.1f}' r='2' fill='#fff'/>"
            f"<text x='{cxf + 8:.1f}' y='{cyf - 6:.1f}' class='muted'>{_e(rsu.get('id'))}</text></g>"
        )
    for item in scene.get("rsi", []):
        c = px(*item["position"]).split(",")
        if item.get("radius_m"):  # a road event's hazard zone, as its RSU announces it (a newcomer review)
            kind = item.get("type")
            what = f"road event {_e(item.get('id'))}" + (
                f" (type {kind})" if isinstance(kind, int) and not isinstance(kind, bool) else ""
            )
            rad = float(item["radius_m"])
            svg.append(
                f"<g class='road-event'><title>{what}, radius {rad:g} m, announced by {_e(item.get('rsu'))} in RSI"
                f"</title><circle cx='{c[0]}' cy='{c[1]}' r='{max(rad * scale, 3):.1f}' fill='#f39c12' "
                "fill-opacity='0.25' stroke='#d35400' stroke-width='1.5'/>"
                f"<text x='{float(c[0]) + max(rad * scale, 3) + 4:.1f}' y='{float(c[1]) + 4:.1f}' fill='#d35400'>"
                f"{_e(item.get('id'))} ({rad:g} m)</text></g>"
            )
        svg.append(
            f"<rect x='{float(c[0]) - 4:.1f}' y='{float(c[1]) - 4:.1f}' width='8' height='8' fill='#f39c12'>"
            f"<title>RSI {_e(item.get('kind'))} {_e(item.get('id'))}</title></rect>"
        )
    actors = sorted({a for by_actor in tracks.values() for a in by_actor})
    colour = {a: TRACK_COLOURS[k % len(TRACK_COLOURS)] for k, a in enumerate(actors)}
    for variant in sorted(tracks, key=lambda v: (v != "v2x", v)):
        dash = "" if variant == "v2x" else " stroke-dasharray='5 3'"
        for actor, track in sorted(tracks[variant].items()):
            if not track:
                continue
            svg.append(
                f"<polyline points='{poly([p[1:] for p in track])}' fill='none' stroke='{colour[actor]}' "
                f"stroke-width='2'{dash}><title>{_e(actor)} ({_e(variant)})</title></polyline>"
            )
            start = px(track[0][1], track[0][2]).split(",")
            svg.append(f"<circle cx='{start[0]}' cy='{start[1]}' r='3' fill='{colour[actor]}'/>")
    for ev in r["events"]:
        variant = str(ev.get("variant", ""))
        for row, shape, title in _marks(ev):
            if shape in MAP_UNMARKED:
                continue
            where = _at(tracks.get(variant, {}).get(row, []), float(ev["t_s"]))
            if where is None:
                continue
            x, y = (float(v) for v in px(*where).split(","))
            svg.append(
                f"<g class='mark {_e(shape.split(':')[0])}'><title>{_e(variant)}: {_e(title)}</title>"
                f"{_shape(shape, x, y)}</g>"
            )
    bar_m = _scale_bar_m(MAP_W / scale)
    bar_px = bar_m * scale
    svg.append(
        f"<path d='M10,{height - 12} h{bar_px:.1f}' stroke='#333' stroke-width='2'/>"
        f"<text x='{14 + bar_px:.1f}' y='{height - 8}' class='muted'>{bar_m:g} m</text>"
    )
    svg.append("</svg>")
    legend = "  &#160; ".join(f"<span style='color:{colour[a]}'>&#9473;</span> {_e(a)}" for a in actors)
    return "".join(svg) + (f"<p class='legend'>{legend}</p>" if legend else "")


def _scale_bar_m(width_m: float) -> float:
    """A round length of about a fifth of the map's width."""
    for bar in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0):
        if bar >= width_m / 5:
            return bar
    return 20000.0


def _tick_step(t_end: float) -> float:
    """A round step that puts at most 12 grid lines on ``[0, t_end]``."""
    for step in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0):
        if t_end / step <= 12:
            return step
    return float(10 ** math.ceil(math.log10(t_end / 12))) if math.isfinite(t_end) and t_end > 0 else t_end


def _shape(shape: str, x: float, y: float) -> str:
    if shape.startswith("warn:"):
        colour = APP_COLOURS.get(shape[5:], DEFAULT_APP_COLOUR)
        return f"<path d='M{x:.1f},{y - 7:.1f} L{x + 6:.1f},{y + 5:.1f} L{x - 6:.1f},{y + 5:.1f} Z' fill='{colour}'/>"
    if shape == "collision":
        return (
            f"<path d='M{x - 6:.1f},{y - 6:.1f} L{x + 6:.1f},{y + 6:.1f} M{x - 6:.1f},{y + 6:.1f} "
            f"L{x + 6:.1f},{y - 6:.1f}' stroke='#b00' stroke-width='3'/>"
        )
    if shape == "violation":
        return (
            f"<rect x='{x - 5:.1f}' y='{y - 5:.1f}' width='10' height='10' fill='#e377c2' "
            f"transform='rotate(45 {x:.1f} {y:.1f})'/>"
        )
    if shape == "stop":
        return f"<rect x='{x - 4:.1f}' y='{y - 4:.1f}' width='8' height='8' fill='#7f7f7f'/>"
    if shape == "passage":
        return f"<path d='M{x:.1f},{y - 7:.1f} L{x:.1f},{y + 7:.1f}' stroke='#555' stroke-width='2'/>"
    if shape == "misbehaviour":
        return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5' fill='none' stroke='#ff7f0e' stroke-width='2'/>"
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#17becf'/>"


def _legend(apps: Iterable[str]) -> str:
    """The legend of a scenario's timelines: the apps whose warnings appear in them (registry order, then
    apps the registry does not know, by name), then the other marks."""
    shown = set(apps)
    known = [app for app in APP_COLOURS if app in shown]
    ordered = known + sorted(shown - set(known))
    items = [
        f"<span style='color:{APP_COLOURS.get(app, DEFAULT_APP_COLOUR)}'>&#9650;</span> {_e(app.upper())}"
        for app in ordered
    ]
    items += [
        "<span style='color:#b00'>&#10006;</span> collision (hover: the relative speed)",
        "<span style='color:#e377c2'>&#9670;</span> red-light violation",
        "<span style='color:#7f7f7f'>&#9632;</span> stop",
        "<span style='color:#555'>|</span> passes a checked point (speed)",
        "<span style='color:#17becf'>&#9679;</span> positioning state",
        "<span style='color:#ff7f0e'>&#9675;</span> misbehaviour judged (on the judge's row)",
    ]
    return "<p class='legend'>" + "  &#160; ".join(items) + "  &#160; (hover a mark for its details)</p>"


def _metrics(variant: str, m: dict[str, Any]) -> str:
    msgs = m.get("messages", {})
    channels = sorted({*msgs.get("sent", {}), *msgs.get("delivered", {}), *msgs.get("dropped", {})})
    out = [f"<details><summary>{_e(variant)}: service metrics</summary>"]
    out.append("<table class='metrics'><tr><th>channel</th><th>sent</th><th>delivered</th><th>dropped</th></tr>")
    for ch in channels:
        out.append(
            f"<tr><td>{_e(ch)}</td><td>{_e(msgs.get('sent', {}).get(ch, 0))}</td>"
            f"<td>{_e(msgs.get('delivered', {}).get(ch, 0))}</td><td>{_e(msgs.get('dropped', {}).get(ch, 0))}</td></tr>"
        )
    out.append("</table>")
    lat_rows = [("all", m.get("latency_ms", {}))]
    lat_rows += [(f"channel {k}", v) for k, v in sorted(m.get("latency_ms_by_channel", {}).items())]
    lat_rows += [(f"message {k}", v) for k, v in sorted(m.get("latency_ms_by_message", {}).items())]
    # The application latency (message sent -> driver warned), per app, beside the channel's.
    lat_rows += [(f"app {k.upper()} (sent to warned)", v) for k, v in sorted(m.get("app_latency_ms", {}).items())]
    out.append("<table class='metrics'><tr><th>latency ms</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>")
    for name, lat in lat_rows:
        if not lat:
            continue
        cells = "".join(f"<td>{_fmt(lat.get(q, '-'), 3)}</td>" for q in ("p50", "p95", "p99", "max"))
        out.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    out.append("</table>")
    facts = [
        ("delivery ratio", m.get("delivery_ratio")),
        ("ticks", m.get("ticks")),
        ("simulated s", m.get("sim_seconds")),
        ("late reports", m.get("late_reports")),
        ("duplicates", m.get("duplicates")),
        ("rejected by the world", json.dumps(m.get("rejected", {}), sort_keys=True)),
        ("rejected by agents", json.dumps(m.get("rejected_by_agents", {}), sort_keys=True)),
    ]
    out.append("<table class='metrics'>")
    out += [f"<tr><th>{_e(k)}</th><td>{_fmt(v, 4)}</td></tr>" for k, v in facts]
    out.append("</table></details>")
    return "\n".join(out)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}tr.fail td{background:#fff0f0}
.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-size:.85em}
.badge.pass{background:#2a7d2a}.badge.fail{background:#c0392b}.badge.error{background:#8e44ad}
.meta,.muted{color:#666}.legend{font-size:.9em;color:#444}
pre.error{background:#f8f0ff;padding:.5em;white-space:pre-wrap}
figure{margin:.5em 0}figcaption{font-weight:600;font-size:.9em}
svg text{font-size:11px}svg .actor{font-size:12px}svg .lane{stroke:#ccc}svg .grid{stroke:#f0f0f0}
svg .muted{fill:#888}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
"""
