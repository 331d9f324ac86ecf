"""``v2x check``: golden regression of scenario outcomes, for CI.

A golden record (``golden/<id>.json`` beside the scenario file) keeps, per variant, what a run of the
scenario did: the first warning of each (target, app, other), the collisions in order, each vehicle's
stops, the speeds at ``speed`` expectation points, the red-light violations, and the verdict of every
expectation, with the tolerances they are compared within. ``v2x check`` runs the scenarios again and
compares; ``--update-golden`` rewrites the records and prints what changed. A record is of one seed:
``golden/<id>.json`` is the main record, of the seed it names, and ``--seeds`` checks each other seed N
against ``golden/<id>.seed<N>.json`` (:func:`golden_records`).

A changed outcome reads as a line a person can act on::

    follower: first FCW about lead 6.10 s -> 7.30 s (tolerance 0.20 s)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_RUN_ERROR
from v2x.files import folder_problem
from v2x.run.pool import job_pool
from v2x.run.results import regular_size, variant_wall_s, write_atomic
from v2x.scenario.model import ALL_VARIANTS, Bool, Int, Real, Variant
from v2x.text import printable, xml_safe

if TYPE_CHECKING:
    from v2x.scenario.model import Scenario

GOLDEN_DIR = "golden"
GOLDEN_VERSION = 1
#: Default tolerances, written into every golden record (edit a record's to loosen or tighten it).
TOLERANCES: dict[str, float] = {"time_s": 0.2, "speed_mps": 0.5, "position_m": 1.0}


# -- the golden record's schema ---------------------------------------------------------------------------
# What golden_record writes, checked whole when a record is loaded (load_golden), so that a hand-edited or
# crafted record is refused with its field path before any scenario runs, instead of failing a comparison
# half-way with a KeyError or TypeError. Numbers are finite real numbers (not booleans or strings).
MAX_GOLDEN_BYTES = 16 * 1024 * 1024  # a shipped record is a few kB
MAX_GOLDEN_PROBLEMS = 20  # problems printed of a bad record (the rest are counted)


def _warning_key(key: str) -> str:
    if len(key.split("|", 2)) != 3:
        raise ValueError("a warning key 'target|app|other'")
    return key


def _speed_key(key: str) -> str:
    if "@" not in key:
        raise ValueError("a speed key 'actor@x,y'")
    return key


_GoldenConfig = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_NonNegative = Annotated[Real, Field(ge=0)]


class _Tolerance(BaseModel):
    model_config = _GoldenConfig
    time_s: _NonNegative
    speed_mps: _NonNegative
    position_m: _NonNegative


class _Collision(BaseModel):
    model_config = _GoldenConfig
    actors: str
    t_s: Real
    relative_speed_mps: Real


class _Stop(BaseModel):
    model_config = _GoldenConfig
    t_s: Real
    x_m: Real
    y_m: Real


class _Violation(BaseModel):
    model_config = _GoldenConfig
    actor: str
    kind: str
    t_s: Real


class _VariantSummary(BaseModel):
    model_config = _GoldenConfig
    expectations: dict[str, Bool]
    warnings: dict[Annotated[str, AfterValidator(_warning_key)], Real]
    collisions: list[_Collision]
    stops: dict[str, list[_Stop]]
    speeds: dict[Annotated[str, AfterValidator(_speed_key)], Real]
    violations: list[_Violation]


class _GoldenRecord(BaseModel):
    model_config = _GoldenConfig
    version: Literal[1]
    scenario: str
    seed: Annotated[Int, Field(ge=0, lt=argtypes.SEED_LIMIT)]  # as --seed takes it (v2x.argtypes.seed)
    # absent: the defaults (TOLERANCES; check_result reads them so); golden_record writes them into every record
    tolerance: _Tolerance = Field(default_factory=lambda: _Tolerance.model_validate(TOLERANCES))
    variants: dict[Variant, _VariantSummary]


def golden_path(scenario_file: Path, scenario_id: str) -> Path:
    """The scenario's main golden record: of the seed it names (the one ``v2x check`` runs without
    ``--seed`` / ``--seeds``)."""
    return scenario_file.parent / GOLDEN_DIR / f"{scenario_id}.json"


def seed_golden_path(scenario_file: Path, scenario_id: str, seed: int) -> Path:
    """The golden record of ``seed`` when the main record (:func:`golden_path`) is of another seed. (A scenario
    id has no dot, so no id's main record has this name.)"""
    return scenario_file.parent / GOLDEN_DIR / f"{scenario_id}.seed{seed}.json"


@dataclass(frozen=True)
class SeedRecord:
    """A seed to check and its golden record: ``path`` where it is (or goes), ``record`` None if none yet."""

    seed: int
    path: Path
    record: dict[str, Any] | None


def golden_records(scenario_file: Path, scenario_id: str, seeds: Sequence[int] | None) -> list[SeedRecord]:
    """The golden record of each of ``seeds`` (None: the main record's seed, else 0), loaded and checked
    (:func:`load_golden`). ``golden/<id>.json`` is the main record, of the seed it names; every other seed N
    has ``golden/<id>.seed<N>.json``, a record of the same form. With no main record yet, the lowest of
    ``seeds`` takes its place (where ``--update-golden`` writes it), as a single seed's record always did."""
    main_path = golden_path(scenario_file, scenario_id)
    main = load_golden(main_path, scenario_id)
    if not seeds:
        seeds = [int(main["seed"]) if main else 0]
    main_seed = int(main["seed"]) if main else min(seeds)
    out = []
    for seed in seeds:
        if seed == main_seed:
            out.append(SeedRecord(seed, main_path, main))
        else:
            path = seed_golden_path(scenario_file, scenario_id, seed)
            out.append(SeedRecord(seed, path, load_golden(path, scenario_id, seed=seed)))
    return out


# -- the outcome summary ---------------------------------------------------------------------------------


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a result document a golden record keeps, per variant."""
    variants: dict[str, Any] = {}
    for variant in result["metrics"]:
        events = [e for e in result["events"] if e["variant"] == variant]
        warnings: dict[str, float] = {}
        for e in events:
            if e["type"] == "warning":
                warnings.setdefault(f"{e['target']}|{e['app']}|{e['other']}", e["t_s"])
        stops: dict[str, list[dict[str, float]]] = {}
        for e in events:
            if e["type"] == "stop":
                stops.setdefault(e["actor"], []).append({"t_s": e["t_s"], "x_m": e["x_m"], "y_m": e["y_m"]})
        variants[variant] = {
            "expectations": {x["name"]: x["passed"] for x in result["expectations"] if x["variant"] == variant},
            "warnings": dict(sorted(warnings.items())),
            "collisions": [
                {"actors": "-".join(e["actors"]), "t_s": e["t_s"], "relative_speed_mps": e["relative_speed_mps"]}
                for e in events
                if e["type"] == "collision"
            ],
            "stops": dict(sorted(stops.items())),
            "speeds": {
                f"{e['actor']}@{e['at'][0]:g},{e['at'][1]:g}": e["speed_mps"] for e in events if e["type"] == "passage"
            },
            "violations": [
                {"actor": e["actor"], "kind": e["kind"], "t_s": e["t_s"]} for e in events if e["type"] == "violation"
            ],
        }
    return variants


def golden_record(result: dict[str, Any], tolerance: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "version": GOLDEN_VERSION,
        "scenario": result["scenario"],
        "seed": result["seed"],
        "tolerance": dict(tolerance or TOLERANCES),
        "variants": summarise(result),
    }


# -- comparison ------------------------------------------------------------------------------------------


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _warning_name(key: str) -> tuple[str, str]:
    target, app, other = key.split("|", 2)
    return target, f"{app.upper()} about {other}"


def compare_variant(golden: dict[str, Any], now: dict[str, Any], tol: dict[str, float] | None) -> list[str]:
    """Readable differences between a variant's golden summary and this run's (empty: the same, within
    tolerance). ``tol`` None: every change, however small, and no tolerance named (``--update-golden``)."""
    out: list[str] = []
    exact = tol is None
    t_tol, v_tol, p_tol = (0.0, 0.0, 0.0) if tol is None else (tol["time_s"], tol["speed_mps"], tol["position_m"])

    def within(text: str) -> str:
        return "" if exact else f" (tolerance {text})"

    for name, was in golden["expectations"].items():
        is_ = now["expectations"].get(name)
        if is_ is None:
            out.append(f"expectation '{name}': no longer in the scenario")
        elif is_ != was:
            out.append(f"expectation '{name}': {'passed' if was else 'failed'} -> {'passed' if is_ else 'failed'}")
    for name in now["expectations"].keys() - golden["expectations"].keys():
        out.append(f"expectation '{name}': new ({'passed' if now['expectations'][name] else 'failed'})")

    for key, was_t in golden["warnings"].items():
        target, what = _warning_name(key)
        is_t = now["warnings"].get(key)
        if is_t is None:
            out.append(f"{target}: {what} no longer raised (was first at {_s(was_t)})")
        elif abs(is_t - was_t) > t_tol + 1e-9:
            out.append(f"{target}: first {what} {_s(was_t)} -> {_s(is_t)}{within(_s(t_tol))}")
    for key in sorted(now["warnings"].keys() - golden["warnings"].keys()):
        target, what = _warning_name(key)
        out.append(f"{target}: {what} now raised, first at {_s(now['warnings'][key])} (not in the golden record)")

    was_c, is_c = golden["collisions"], now["collisions"]
    for k in range(max(len(was_c), len(is_c))):
        if k >= len(is_c):
            out.append(f"collision {was_c[k]['actors']} at {_s(was_c[k]['t_s'])} no longer happens")
        elif k >= len(was_c):
            out.append(f"collision {is_c[k]['actors']} at {_s(is_c[k]['t_s'])} is new")
        elif was_c[k]["actors"] != is_c[k]["actors"]:
            out.append(f"collision {k + 1}: {was_c[k]['actors']} -> {is_c[k]['actors']}")
        else:
            pair = was_c[k]["actors"]
            if abs(is_c[k]["t_s"] - was_c[k]["t_s"]) > t_tol + 1e-9:
                out.append(f"collision {pair}: {_s(was_c[k]['t_s'])} -> {_s(is_c[k]['t_s'])}{within(_s(t_tol))}")
            dv = abs(is_c[k]["relative_speed_mps"] - was_c[k]["relative_speed_mps"])
            if dv > v_tol + 1e-9:
                out.append(
                    f"collision {pair}: {was_c[k]['relative_speed_mps']:.2f} -> "
                    f"{is_c[k]['relative_speed_mps']:.2f} m/s{within(f'{v_tol:.2f} m/s')}"
                )

    for actor in sorted(golden["stops"].keys() | now["stops"].keys()):
        was_s, is_s = golden["stops"].get(actor, []), now["stops"].get(actor, [])
        if len(was_s) != len(is_s):
            out.append(f"{actor}: stops {len(was_s)} -> {len(is_s)}")
            continue
        for k, (a, b) in enumerate(zip(was_s, is_s, strict=True), start=1):
            if abs(b["t_s"] - a["t_s"]) > t_tol + 1e-9:
                out.append(f"{actor}: stop {k} at {_s(a['t_s'])} -> {_s(b['t_s'])}{within(_s(t_tol))}")
            moved = math.hypot(b["x_m"] - a["x_m"], b["y_m"] - a["y_m"])
            if moved > p_tol + 1e-9:
                out.append(
                    f"{actor}: stop {k} at ({a['x_m']:.1f}, {a['y_m']:.1f}) -> ({b['x_m']:.1f}, {b['y_m']:.1f}) m "
                    f"({moved:.1f} m apart{'' if exact else f', tolerance {p_tol:.1f} m'})"
                )

    for gate in sorted(golden["speeds"].keys() | now["speeds"].keys()):
        was_v, is_v = golden["speeds"].get(gate), now["speeds"].get(gate)
        actor, at = gate.split("@", 1)
        if is_v is None:
            out.append(f"{actor}: no longer passes ({at})")
        elif was_v is None:
            out.append(f"{actor}: passes ({at}) at {is_v:.2f} m/s (not in the golden record)")
        elif abs(is_v - was_v) > v_tol + 1e-9:
            out.append(f"{actor}: speed at ({at}) {was_v:.2f} -> {is_v:.2f} m/s{within(f'{v_tol:.2f} m/s')}")

    def _v_key(v: dict[str, Any]) -> tuple[str, str]:
        return (v["actor"], v["kind"])

    was_v = {_v_key(v): v for v in golden["violations"]}
    is_v = {_v_key(v): v for v in now["violations"]}
    for key in sorted(was_v.keys() | is_v.keys()):
        actor, kind = key
        if key not in is_v:
            out.append(f"{actor}: {kind} violation at {_s(was_v[key]['t_s'])} no longer happens")
        elif key not in was_v:
            out.append(f"{actor}: {kind} violation at {_s(is_v[key]['t_s'])} is new")
        elif abs(is_v[key]["t_s"] - was_v[key]["t_s"]) > t_tol + 1e-9:
            out.append(f"{actor}: {kind} violation {_s(was_v[key]['t_s'])} -> {_s(is_v[key]['t_s'])}")
    return out


# -- a check run -----------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    """One scenario and variant: ``status`` is pass, fail (outcome changed or an expectation failed),
    new (no golden record yet), updated or unchanged (``--update-golden``: the variant's record changed, or
    did not) or error (the run could not complete)."""

    scenario: str
    variant: str
    status: str
    lines: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    seed: int | None = None  # the seed run (None: none was, as when nothing could run)


def failed_expectations(result: dict[str, Any], variant: str) -> list[str]:
    """A line per expectation of ``variant`` that failed in ``result``."""
    return [
        f"expectation '{x['name']}' failed: {x['detail']}"
        for x in result["expectations"]
        if x["variant"] == variant and not x["passed"]
    ]


NO_RECORD = "no golden record (create it with --update-golden)"


def check_result(
    result: dict[str, Any], golden: dict[str, Any] | None, wall_s: float, *, no_record: str = NO_RECORD
) -> list[CaseResult]:
    """A case per variant of ``result``, compared with ``golden``; ``no_record``: what a variant without a
    record says (how to make one)."""
    now = summarise(result)
    cases = []
    seed = int(result["seed"])
    for variant, summary in now.items():
        failed = failed_expectations(result, variant)
        wall = variant_wall_s(result, variant, wall_s)
        if golden is None or variant not in golden["variants"]:
            cases.append(CaseResult(result["scenario"], variant, "new", [no_record, *failed], wall, seed))
            continue
        diffs = compare_variant(golden["variants"][variant], summary, golden.get("tolerance", TOLERANCES))
        lines = diffs + failed
        cases.append(CaseResult(result["scenario"], variant, "fail" if lines else "pass", lines, wall, seed))
    return cases


class GoldenError(ValueError):
    """A golden record that is not one: ``problems`` are (field path, what was expected) pairs, as a
    scenario file's (v2x.scenario.ScenarioError); the message names the file on every line."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:MAX_GOLDEN_PROBLEMS]
        lines = [f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}" for loc, msg in shown]
        if len(problems) > len(shown):
            lines.append(f"{path}: ... and {len(problems) - len(shown)} more problems")
        super().__init__("\n".join(lines))


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = printable(key[:60])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def load_golden(path: Path, scenario_id: str | None = None, *, seed: int | None = None) -> dict[str, Any] | None:
    """A golden record, or None if there is none. Raises :class:`GoldenError` (a ValueError) naming the
    file, the field path and what was expected if it is not one: the whole record is checked here, against
    what :func:`golden_record` writes (``_GoldenRecord``), before any run compares with it; with
    ``scenario_id``, also that it is that scenario's record (a record copied from another scenario's); with
    ``seed``, that it is of that seed (``golden/<id>.seed<N>.json``: a record renamed by hand)."""
    from pydantic import ValidationError

    from v2x.scenario.loader import pydantic_problems

    if not path.exists():
        return None
    try:
        size = regular_size(path)
        if size is None:
            raise GoldenError(path, [("", "not a regular file: not a golden record")])
        if size > MAX_GOLDEN_BYTES:
            raise GoldenError(path, [("", f"larger than {MAX_GOLDEN_BYTES >> 20} MiB: not a golden record")])
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:  # (json takes the last; which one was meant is unknown, as in a scenario file)
        raise GoldenError(path, [("", f"not a golden record: duplicate key {exc.key!r} in one object")]) from exc
    except OSError as exc:
        raise GoldenError(path, [("", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise GoldenError(path, [("", "not a golden record: not UTF-8 text")]) from exc
    except RecursionError as exc:
        raise GoldenError(path, [("", "not a golden record: nested too deeply")]) from exc
    except ValueError as exc:  # not JSON, or an integer of 5000 digits
        raise GoldenError(path, [("", f"not a golden record: not valid JSON: {exc}")]) from exc
    if not isinstance(doc, dict):
        raise GoldenError(path, [("", f"not a golden record: expected a JSON object, got {type(doc).__name__}")])
    if doc.get("version") != GOLDEN_VERSION:
        got = json.dumps(doc["version"])[:40] if "version" in doc else "none"
        raise GoldenError(path, [("version", f"not a golden record: version {GOLDEN_VERSION} expected, got {got}")])
    try:
        _GoldenRecord.model_validate(doc)
    except ValidationError as exc:
        unknown = "unknown field (a golden record holds what 'v2x check --update-golden' writes)"
        raise GoldenError(path, pydantic_problems(exc, unknown=unknown, drop_tags=())) from exc
    if scenario_id is not None and doc["scenario"] != scenario_id:
        got = printable(json.dumps(doc["scenario"])[:60])
        raise GoldenError(path, [("scenario", f"the record of scenario {scenario_id!r} expected, got {got}")])
    if seed is not None and int(doc["seed"]) != seed:
        raise GoldenError(
            path, [("seed", f"the record of seed {seed} expected (as its file name says), got {doc['seed']}")]
        )
    return doc


def update_golden(path: Path, result: dict[str, Any]) -> list[str]:
    """Write the golden record of ``result`` to ``path``; the differences from the old record, if any. The
    old record's variants that ``result`` did not run (``--variant``) are kept if it is of the same seed."""
    old = load_golden(path)
    new = golden_record(result, old.get("tolerance") if old else None)
    if old is not None and int(old["seed"]) == int(new["seed"]):
        kept = {v: s for v, s in old["variants"].items() if v not in new["variants"]}
        new["variants"] = {**kept, **new["variants"]}
    changes: list[str] = []
    if old is None:
        changes.append("new golden record")
    else:
        for variant, summary in new["variants"].items():
            if variant not in old["variants"]:
                changes.append(f"[{variant}] new variant")
                continue
            lines = compare_variant(old["variants"][variant], summary, None)  # every change, however small
            changes += [f"[{variant}] {line}" for line in lines]
    write_atomic(path, json.dumps(new, indent=1, sort_keys=True) + "\n")
    return changes


def case_name(case: CaseResult, name_seeds: bool) -> str:
    """A case's name within its scenario: the variant, with ``name_seeds`` and its seed ``v2x (seed 3)``."""
    return f"{case.variant} (seed {case.seed})" if name_seeds and case.seed is not None else case.variant


def write_junit(cases: Sequence[CaseResult], path: Path, *, suite: str = "v2x check", name_seeds: bool = False) -> None:
    """One testcase per scenario and variant (classname ``v2x.check.<scenario>``, name the variant; another
    ``suite``, ``v2x sweep``, names the suite and prefixes the class names as ``v2x.sweep``); with
    ``name_seeds`` (``v2x check --seeds``), per scenario, variant and seed, named ``v2x (seed 3)``."""
    prefix = suite.replace(" ", ".")
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.status in ("fail", "new") for c in cases)),
        errors=str(sum(c.status == "error" for c in cases)),
    )
    testsuite = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(sum(c.status in ("fail", "new") for c in cases)),
        errors=str(sum(c.status == "error" for c in cases)),
        time=f"{sum(c.wall_s for c in cases):.3f}",
    )
    for c in cases:
        case = ET.SubElement(
            testsuite,
            "testcase",
            classname=f"{prefix}.{c.scenario}",
            name=case_name(c, name_seeds),
            time=f"{c.wall_s:.3f}",
        )
        text = "\n".join(c.lines)
        if c.status in ("fail", "new"):
            ET.SubElement(case, "failure", message=c.lines[0] if c.lines else c.status).text = text
        elif c.status == "error":
            ET.SubElement(case, "error", message=c.lines[0] if c.lines else "run error").text = text
        elif text:
            ET.SubElement(case, "system-out").text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ET.tostring(xml_safe(root), encoding="utf-8", xml_declaration=True))


#: A case's statuses (summary.json's ``counts`` has one of each), and those that pass.
STATUSES = ("pass", "fail", "new", "updated", "unchanged", "error")
PASSING = ("pass", "updated", "unchanged")


def summary_document(cases: Sequence[CaseResult], wall_s: float) -> dict[str, Any]:
    return {
        "passed": all(c.status in PASSING for c in cases),
        "counts": {s: sum(c.status == s for c in cases) for s in STATUSES},
        "wall_seconds": round(wall_s, 3),
        "cases": [
            {
                "scenario": c.scenario,
                "variant": c.variant,
                "seed": c.seed,
                "status": c.status,
                "lines": c.lines,
                "wall_s": c.wall_s,
            }
            for c in cases
        ],
    }


def tally(counts: dict[str, int], n_scenarios: int, wall_s: float, seeds: Sequence[int] = ()) -> str:
    """The closing line's counts, named as the table names the cases: a case without a record is new, not
    failed (the tally said '0 passed, 2 failed' under a table of NEW cases and beside a summary.json of
    '"fail": 0, "new": 2': a newcomer review); it still fails the check (exit 1)."""
    rewritten = ", ".join(f"{counts[s]} {s}" for s in ("updated", "unchanged") if counts[s])  # --update-golden's
    passed = f"{sum(counts[s] for s in PASSING)} passed" + (f" ({rewritten})" if rewritten else "")
    parts = [passed, f"{counts['fail']} failed"]
    if counts["new"]:
        parts.append(f"{counts['new']} new (no golden record)")
    parts.append(f"{counts['error']} could not run")
    over = f"seed{'' if len(seeds) == 1 else 's'} {argtypes.seed_spec(seeds)}, " if seeds else ""
    return ", ".join(parts) + f" ({n_scenarios} scenario{'' if n_scenarios == 1 else 's'}, {over}{wall_s:.1f} s)"


def table(cases: Sequence[CaseResult], name_seeds: bool = False) -> str:
    """The cases as a table; with ``name_seeds`` (``v2x check --seeds``) a column of their seeds."""
    head = ("scenario", "variant", *(("seed",) if name_seeds else ()), "status")
    rows = [(*head, "detail")]
    for c in cases:
        detail = printable(c.lines[0]) if c.lines else ""  # (names from scenario files and golden records)
        more = f" (+{len(c.lines) - 1} more)" if len(c.lines) > 1 else ""
        seed = ("-" if c.seed is None else str(c.seed),) if name_seeds else ()
        rows.append((c.scenario, c.variant, *seed, c.status.upper(), detail + more))
    n = len(head)
    widths = [max(len(r[k]) for r in rows) for k in range(n)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r[:n], widths, strict=True)), r[n]]).rstrip() for r in rows
    )


# -- the command -----------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser(
        "check",
        help="run scenarios and compare their outcomes with golden records (CI regression)",
        description="Run scenarios (ids, files, or directories of *.yaml; default: the shipped catalogue) "
        "and compare each variant's outcome - who was warned and when, collisions, stops, speeds at checked "
        "points, violations, expectation verdicts - with its golden record (golden/<id>.json beside the "
        "scenario file), within the tolerances the record states. A record is of one seed: --seeds 0-4 runs "
        "each seed and compares it with that seed's own record (golden/<id>.json for the seed it names, "
        "golden/<id>.seed<N>.json for each other seed N; --update-golden --seeds 0-4 writes them). Writes "
        "OUT/junit.xml (one test case per scenario and variant, and seed with --seeds) and OUT/summary.json, "
        "and prints a table. A scenario with outside stacks "
        "(external: true) needs --broker mqtt://... and, for the stacks to know which runs to join, --run-id "
        '(docs/RESULTS.md, "With an outside stack").',
        epilog="Exit codes: 0 every outcome matches its record and every expectation held, 1 an outcome "
        "changed, an expectation failed or a record (of a seed) is missing, 2 bad input (an --out folder it "
        "cannot write too; nothing was run), 3 a run could not complete (or the reports could not be written "
        "after all), 130 / 143 interrupted by SIGINT / SIGTERM (the runs in progress and their worker processes "
        "were stopped; no report).",
    )
    check.add_argument("targets", nargs="*", metavar="SCENARIO|DIR", help="scenario ids, files or directories")
    check.add_argument("--out", type=Path, default=Path("check-results"), metavar="OUT", help="(check-results/)")
    check.add_argument(
        "--update-golden", action="store_true", help="rewrite the golden records from this run; print what changed"
    )
    check.add_argument("--broker", default="embedded", metavar="URL", help="'embedded' (default) or mqtt://host:port")
    which_seeds = check.add_mutually_exclusive_group()
    which_seeds.add_argument(
        "--seed",
        type=argtypes.seed,
        default=None,
        help="seed, 0 to 2**63-1, compared with that seed's own record (default: the main record's, else 0)",
    )
    which_seeds.add_argument(
        "--seeds",
        type=_seed_spec,
        default=None,
        metavar="SPEC",
        help="run these seeds, e.g. 0-4 or 0,3,7 (at most 1000), each compared with its own golden record: "
        "golden/<id>.json for the seed it names, golden/<id>.seed<N>.json for every other seed N; with "
        "--update-golden, write them all. One case per scenario, variant and seed",
    )
    check.add_argument(
        "--run-id",
        metavar="PREFIX",
        help="fixed run ids PREFIX-v2x and PREFIX-baseline (as 'v2x run --run-id') for the scenario with outside "
        "stacks (external: true), printed before its runs, so that each stack knows which run to join; 1-55 of "
        "A-Z a-z 0-9 _ . -; at most one scenario with outside stacks per check (the others' run ids stay "
        "random; with none, the check takes a single scenario). Without it the random run id each stack must "
        "join is printed when its run waits for it",
    )
    check.add_argument(
        "--variant",
        choices=ALL_VARIANTS,
        action="append",
        metavar="{v2x,baseline}",
        help="run and compare only this variant (repeatable; default: every variant of each scenario), e.g. "
        "v2x for an outside stack that cannot meet the baseline's expectations; --update-golden then rewrites "
        "only its part of each record",
    )
    argtypes.add_join_timeout(
        check.add_argument,
        "a scenario with outside stacks (external: true): how long each variant waits for them to join "
        f"before its run stops (an error case naming them; default {argtypes.JOIN_TIMEOUT_S:g})",
    )
    check.add_argument(
        "--jobs",
        type=argtypes.count,
        default=None,
        metavar="J",
        help=f"scenarios run at once in processes, at most {argtypes.MAX_PROCESSES} (default: cores)",
    )
    check.add_argument(
        "--workers",
        type=argtypes.count,
        default=1,
        metavar="N",
        help="host each run's equipped background vehicles in N fleet worker processes, as 'v2x run --workers "
        f"N' (at most {argtypes.MAX_PROCESSES}; default 1); needs a broker; the outcome is the same for any N",
    )
    check.add_argument("-v", "--verbose", action="store_true", help="print every difference, not only the first")
    check.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines, only notes, the table and the tally"
    )
    check.set_defaults(handler=cmd_check)


def _seed_spec(text: str) -> list[int]:
    """``--seeds SPEC``: :func:`v2x.argtypes.seed_list`, but not a lone number (``v2x sweep --seeds 5``
    counts five seeds from 0: here that would check seed 5 alone)."""
    seeds = argtypes.seed_list(text)
    if "-" not in text and "," not in text:
        raise argparse.ArgumentTypeError(
            f"seeds to run, as a range or a list (0-4, 0,3,7), got {text!r}: for seed {seeds[0]} alone, --seed "
            f"{seeds[0]}; for seeds 0 to {seeds[0] - 1} (v2x sweep --seeds {seeds[0]} counts them), --seeds "
            f"0-{seeds[0] - 1}"
            if seeds[0] > 0
            else f"seeds to run, as a range or a list (0-4, 0,3,7), got {text!r}: for seed 0 alone, --seed 0"
        )
    return seeds


def scenario_files(targets: Sequence[str]) -> list[Path]:
    """The scenario files ``targets`` name (ids, files, directories), without repeats; the catalogue if
    none. Raises ScenarioError for a name that is none of these."""
    from v2x.scenario import catalogue, find_scenario, scenario_names

    if not targets:
        return catalogue()
    out: list[Path] = []
    for target in targets:
        found = [find_scenario(name) for name in scenario_names(target)]
        out.extend(p for p in found if p.resolve() not in {q.resolve() for q in out})
    return out


def run_cost(scenario: Scenario) -> int:
    """A scenario's run time in arbitrary units, to order the work by: ticks x (actors + 2) x variants
    (a tick costs about as much as two more actors' messages and steps, whatever the scenario)."""
    return (scenario.n_ticks + 1) * (len(scenario.actors) + 2) * len(scenario.variants)


@dataclass(frozen=True)
class _Job:
    """One scenario's run (picklable: it goes to a worker process). ``run_id``: ``--run-id``'s prefix, for
    the scenario it names; None, random run ids."""

    path: str
    seed: int
    broker: str
    workers: int
    run_id: str | None = None
    join_timeout_s: float = argtypes.JOIN_TIMEOUT_S
    variants: tuple[str, ...] | None = None  # (None: every variant)


def _run_one(job: _Job) -> tuple[dict[str, Any] | str, float, float, float]:
    """Run one scenario file (in a worker process, or here): its result document, or the run error's text;
    the wall seconds it took, the seconds of them its process was idle (waiting on the broker) and its CPU
    seconds."""
    import logging

    from v2x.run.cli import run_job
    from v2x.run.runner import RunError, outside_stacks, run_scenario
    from v2x.scenario import load_scenario

    logging.getLogger().setLevel(logging.ERROR)
    scenario = load_scenario(job.path)
    if outside_stacks(scenario):
        # the run's "waiting up to 30 s for the outside stacks of ... to join" names the run id they join (a random
        # one is known only then), as `v2x run` says it: the stacks cannot know it otherwise (an adopter review)
        logging.getLogger("v2x.run").setLevel(logging.WARNING)
    t0, cpu0 = time.monotonic(), time.process_time()
    try:
        result: dict[str, Any] | str = run_job(
            run_scenario(
                scenario,
                seed=job.seed,
                broker=job.broker,
                workers=job.workers,
                run_id=job.run_id,
                join_timeout_s=job.join_timeout_s,
                variants=job.variants,
            )
        )
    except RunError as exc:
        result = str(exc)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    return result, round(wall, 3), wall - cpu, cpu


class _NothingRun(Exception):
    """``v2x check`` stops before any run: exit ``code``; ``what`` names the case in the reports."""

    def __init__(self, code: int, what: str, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else what)
        self.code = code
        self.what = what
        self.lines = lines


def _seeds_asked(args: argparse.Namespace) -> list[int] | None:
    """The seeds ``--seed`` / ``--seeds`` name, or None (each scenario's main record's)."""
    return args.seeds if args.seeds is not None else None if args.seed is None else [args.seed]


def _prepare(
    args: argparse.Namespace,
) -> tuple[list[tuple[Path, Scenario]], dict[Path, list[SeedRecord]], list[CaseResult]]:
    """Load and check everything ``v2x check`` needs before its first run (scenario files, golden records,
    options, the broker), or raise :class:`_NothingRun`. Scenarios this machine cannot run (SUMO's without
    SUMO) are taken out of the runs, each variant an ``error`` case saying why: the others still run (an
    install without the sumo extra ran nothing at all: a newcomer review)."""
    from v2x.net.broker import BrokerURLError, parse_broker_url
    from v2x.run.runner import broker_away, only_variants, unjoinable
    from v2x.scenario import ScenarioError, load_scenario, same_ids
    from v2x.scenario.sumo import cannot_run

    if args.broker != "embedded":
        try:
            parse_broker_url(args.broker)
        except BrokerURLError as exc:
            raise _NothingRun(EXIT_BAD_INPUT, "options", [f"v2x check: {exc}"]) from None
    if (problem := folder_problem(args.out)) is not None:  # (found after every run: a traceback, or exit 3)
        raise _NothingRun(EXIT_BAD_INPUT, "options", [f"v2x check: --out {args.out}: {problem}"])
    loaded = []
    problems: list[str] = []  # every bad file's, as v2x run says them (only the first was said: newcomer 5)
    try:
        files = scenario_files(args.targets)
    except ScenarioError as exc:  # (a name that is no scenario)
        files, problems = [], str(exc).splitlines()
    for path in files:
        try:
            loaded.append((path, load_scenario(path)))
        except ScenarioError as exc:
            problems.extend(str(exc).splitlines())
    if problems:
        raise _NothingRun(EXIT_BAD_INPUT, "scenarios", [*problems, "v2x check: invalid scenario; nothing was run"])
    try:
        clashes = same_ids(loaded)
        goldens = {path: golden_records(path, sc.id, _seeds_asked(args)) for path, sc in loaded}
    except GoldenError as exc:
        fix = "fix it, or delete it and run --update-golden"
        lines = [*str(exc).splitlines(), f"v2x check: invalid golden record ({fix}); nothing was run"]
        raise _NothingRun(EXIT_BAD_INPUT, "scenarios", lines) from None
    if clashes:
        lines = [*(str(clash) for clash in clashes), "v2x check: two scenarios with one id; nothing was run"]
        raise _NothingRun(EXIT_BAD_INPUT, "scenarios", lines)
    if not loaded:
        where = ", ".join(args.targets)
        lines = [f"v2x check: no scenario files (*.yaml, *.yml) in {where} (a folder's own files: not its subfolders)"]
        raise _NothingRun(EXIT_BAD_INPUT, "scenarios", lines)
    not_here: list[CaseResult] = []
    runnable = []
    for path, sc in loaded:
        why = cannot_run(sc)
        if why is None:
            runnable.append((path, sc))
            continue
        line = f"{sc.id}: {why}"
        print(printable(f"v2x check: {line}"), file=sys.stderr)
        not_here += [
            CaseResult(sc.id, v, "error", [f"cannot run here: {line}"], seed=rec.seed)
            for rec in goldens[path]
            for v in sc.variants
        ]
    loaded = runnable
    for cannot in filter(None, (unjoinable(sc, args.broker) for _, sc in loaded)):
        raise _NothingRun(EXIT_BAD_INPUT, "scenarios", [f"v2x check: {cannot}"])
    if args.variant:  # (each scenario as run: its cases and run ids are of these variants only)
        try:
            loaded = [(path, only_variants(sc, args.variant)) for path, sc in loaded]
        except ValueError as exc:
            raise _NothingRun(EXIT_BAD_INPUT, "options", [f"v2x check: --variant: {exc}"]) from None
    if args.run_id is not None and args.seeds is not None and len(args.seeds) > 1:
        why = "it names one run per variant: check one seed (--seed N) per 'v2x check', each with a --run-id of its own"
        raise _NothingRun(
            EXIT_BAD_INPUT, "options", [f"v2x check: --run-id with --seeds {argtypes.seed_spec(args.seeds)}: {why}"]
        )
    if args.run_id is not None and (why := _run_id_unusable(args.run_id, loaded)) is not None:
        raise _NothingRun(EXIT_BAD_INPUT, "options", [f"v2x check: --run-id {printable(repr(args.run_id))}: {why}"])
    away = broker_away(args.broker) if args.broker != "embedded" else None  # once, not once per scenario
    if away is not None:
        raise _NothingRun(EXIT_RUN_ERROR, "broker", [f"v2x check: {away}"])
    return loaded, goldens, not_here


def _no_record(path: Path, scenario_id: str, rec: SeedRecord, name_seeds: bool) -> str:
    """What a case without a golden record says: how to make it (and, for a seed of its own, where it goes)."""
    if not name_seeds and rec.path == golden_path(path, scenario_id):
        return NO_RECORD
    where = rec.path.relative_to(path.parent)
    return f"no golden record of seed {rec.seed} (create it with --update-golden: {where})"


def _run_id_unusable(prefix: str, loaded: Sequence[tuple[Path, Scenario]]) -> str | None:
    """Why ``--run-id PREFIX`` cannot name the runs of :func:`_run_id_target`, or None. A run id must differ
    between runs, and a stack must know which scenario it joins: the prefix goes to one scenario only."""
    from v2x.run.runner import outside_stacks

    if not argtypes.valid_run_id_prefix(prefix):
        return argtypes.RUN_ID_RULE
    outside = [sc.id for _, sc in loaded if outside_stacks(sc)]
    if len(outside) > 1:
        return (
            f"{len(outside)} scenarios have outside stacks (external: true): {', '.join(outside)}; a run id names one "
            "scenario's runs: check each in a 'v2x check' of its own, with a --run-id (and --out) of its own"
        )
    if not outside and len(loaded) > 1:
        return (
            f"it names the runs of the scenario with outside stacks (external: true), and none of these {len(loaded)} "
            "has one (or give a single scenario)"
        )
    return None


def _run_id_target(loaded: Sequence[tuple[Path, Scenario]]) -> Path:
    """The scenario ``--run-id`` names (checked by :func:`_run_id_unusable`): the one with outside stacks,
    else the only one."""
    from v2x.run.runner import outside_stacks

    return next((path for path, sc in loaded if outside_stacks(sc)), loaded[0][0])


def _say_run_ids(loaded: Sequence[tuple[Path, Scenario]], run_ids: dict[Path, str | None], join_s: float) -> None:
    """Before the first run: which runs each scenario's outside stacks join, so that they can be started."""
    from v2x.run.runner import fixed_run_ids, outside_stacks

    for path, sc in loaded:
        actors = outside_stacks(sc)
        if not actors:
            continue
        who = f"v2x check: {sc.id}: the outside stack(s) of {', '.join(actors)}"
        prefix = run_ids.get(path)
        if prefix is None:
            print(
                f"{who} join random run ids, each said when its run waits for them (give --run-id PREFIX to know "
                "them beforehand)",
                file=sys.stderr,
                flush=True,
            )
            continue
        ids = list(fixed_run_ids(prefix, sc.variants).values())
        print(
            f"{who} join run {', then run '.join(ids)}; each run waits up to {join_s:g} s for them (docs/PROTOCOL.md)",
            file=sys.stderr,
            flush=True,
        )


def cmd_check(args: argparse.Namespace) -> int:
    """``v2x check``; SIGINT / SIGTERM stop the runs in progress (and the workers) and exit 130 / 143."""
    from v2x.run.cli import run_interruptibly

    return run_interruptibly(_cmd_check, args, "v2x check", "the runs in progress were stopped, no report")


def _cmd_check(args: argparse.Namespace) -> int:
    import logging

    from v2x.run.runner import warm_up_core

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        loaded, goldens, not_here = _prepare(args)
    except _NothingRun as exc:
        for line in exc.lines:
            print(printable(line), file=sys.stderr)  # (paths and keys quote the files)
        # a CI job that publishes the JUnit file shows why nothing ran, not a missing file
        case = CaseResult(exc.what, "-", "error", [line.removeprefix("v2x check: ") for line in exc.lines])
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            write_junit([case], args.out / "junit.xml")
            write_atomic(args.out / "summary.json", json.dumps(summary_document([case], 0.0), indent=1) + "\n")
        except OSError as err:
            print(f"v2x check: cannot write the reports to {args.out}: {err.strerror or err}", file=sys.stderr)
        return exc.code
    from v2x.scenario import scenario_notes

    for _, sc in loaded:
        for note in scenario_notes(sc):
            print(printable(f"v2x check: note: {note}"), file=sys.stderr)

    def report(line: str) -> None:  # (the first run after an install compiles for 30-40 s: a newcomer review)
        print(f"v2x check: {line}", file=sys.stderr, flush=True)

    warm_up_core([sc for _, sc in loaded], None if args.quiet else report)
    started = time.monotonic()
    cases: list[CaseResult] = []
    # a run per scenario and seed, each compared with its seed's own record (golden_records)
    runs = [(path, sc, rec) for path, sc in loaded for rec in goldens[path]]
    name_seeds = args.seeds is not None
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(runs)))
    from v2x.run.runner import idle_note

    # said once: a broker that answers each lockstep round trip late (Nagle) slows every run alike
    slow: str | None = None
    run_ids: dict[Path, str | None] = {path: None for path, _ in loaded}
    if args.run_id is not None:
        run_ids[_run_id_target(loaded)] = args.run_id
    _say_run_ids(loaded, run_ids, args.join_timeout)
    work = [
        _Job(
            str(path),
            rec.seed,
            args.broker,
            args.workers,
            run_ids[path],
            args.join_timeout,
            tuple(args.variant) if args.variant else None,
        )
        for path, _, rec in runs
    ]
    # (interrupted, SIGINT / SIGTERM: cmd_check; the pool's runs in progress go too)
    with contextlib.ExitStack() as stack:
        if jobs == 1:
            outcomes: Iterable[tuple[dict[str, Any] | str, float, float, float]] = map(_run_one, work)
        else:
            # The longest runs start first, so that the workers finish together instead of one of them
            # starting a long scenario late; results are still reported in the catalogue's order.
            pool = stack.enter_context(job_pool(jobs))
            longest_first = sorted(range(len(work)), key=lambda k: -run_cost(runs[k][1]))
            futures = {k: pool.submit(_run_one, work[k]) for k in longest_first}
            outcomes = (futures[k].result() for k in range(len(work)))
        for k, ((path, sc, rec), (outcome, wall, idle, cpu)) in enumerate(zip(runs, outcomes, strict=True), start=1):
            if not args.quiet:
                print(f"[{k}/{len(runs)}] {sc.id} (seed {rec.seed}) {wall:.1f} s", file=sys.stderr, flush=True)
            if not isinstance(outcome, str) and slow is None:
                slow = idle_note(sc, outcome, args.broker, idle, cpu, workers=args.workers)
                if slow is not None:
                    print(f"v2x check: {sc.id}: note: {slow}", file=sys.stderr, flush=True)
            if isinstance(outcome, str):
                cases += [CaseResult(sc.id, v, "error", [f"run error: {outcome}"], seed=rec.seed) for v in sc.variants]
            elif args.update_golden:
                changes = update_golden(rec.path, outcome)
                for line in changes:
                    print(f"  {sc.id}{f' (seed {rec.seed})' if name_seeds else ''}: {printable(line)}")
                # A run whose expectations failed is recorded (it is what happened) but fails here too, as the
                # next check of it would: a golden record does not make a failing scenario pass.
                for v in outcome["metrics"]:
                    failed = failed_expectations(outcome, v)
                    # this variant's changes (a new record is new for every variant)
                    mine = [line for line in changes if not line.startswith("[") or line.startswith(f"[{v}] ")]
                    took = variant_wall_s(outcome, v, wall)
                    # (a variant whose record did not change said UPDATED: a newcomer review)
                    cases.append(
                        CaseResult(sc.id, v, "fail", [*failed, *mine], took, rec.seed)
                        if failed
                        else CaseResult(sc.id, v, "updated" if mine else "unchanged", mine, took, rec.seed)
                    )
            else:
                cases += check_result(outcome, rec.record, wall, no_record=_no_record(path, sc.id, rec, name_seeds))
    cases += not_here
    wall_s = time.monotonic() - started
    doc = summary_document(cases, wall_s)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        write_junit(cases, args.out / "junit.xml", name_seeds=name_seeds)
        write_atomic(args.out / "summary.json", json.dumps(doc, indent=1) + "\n")
    except OSError as exc:  # a full disk, a file where the folder should be: said, exit 3 (was a traceback)
        print(table(cases, name_seeds))
        print(f"v2x check: cannot write the reports under {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUN_ERROR
    print(table(cases, name_seeds))
    if args.verbose:
        for c in cases:
            for line in c.lines[1:]:
                print(f"  {c.scenario} [{case_name(c, name_seeds)}] {printable(line)}")
    n_scenarios = len(loaded) + len({c.scenario for c in not_here})
    counted = tally(doc["counts"], n_scenarios, wall_s, args.seeds or ())
    print(f"{counted} -> {args.out}/junit.xml, {args.out}/summary.json")
    if doc["counts"]["error"]:
        return EXIT_RUN_ERROR
    return EXIT_OK if doc["passed"] else EXIT_FAILED
