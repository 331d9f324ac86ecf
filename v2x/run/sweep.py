"""``v2x sweep``: Monte Carlo over seeds - how often each application does what its scenario expects.

A scenario's expectations say who must be warned (``warning``) and who must not (``no_warning``). Over N
seeds (each a different draw of positioning noise, radio loss and delay, sensor misses), per application:

* **detection rate**: the share of (seed, ``warning`` expectation of the app) pairs that held (the target
  was warned, by that app, about that party, inside the window, with the TTC asked for);
* **false-warning rate**: the share of (seed, ``no_warning`` expectation of the app) pairs that failed (a
  party that must not be warned was);
* **lead time**: for each first warning a ``warning`` expectation names, how long before the event it
  warns of: the time of the same pair's collision in the baseline variant if there is one, else the
  warning's own ``ttc_s`` (the app's time to the collision, the stop line, the hazard or the sign);
  reported as p5, p50 and p95;
* **collision rate** per variant: the share of seeds with at least one collision, with V2X and without.

``--positioning`` swaps every actor's positioning profile, ``--network`` one link's profile (the link
the profile is for; v2x.scenario.profiles, as ``v2x run`` swaps them), so that one sweep shows how the apps
degrade, e.g. rtk-fixed -> spp-open-sky. Seeds run in parallel processes (``--jobs``) on the in-process
loopback bus, which gives the same outcomes as a broker (tested) without its cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_RUN_ERROR
from v2x.run.check import CaseResult, write_junit
from v2x.run.pool import job_pool
from v2x.scenario.profiles import LINK_OF_KIND, add_profile_options, profile_args
from v2x.sim.metrics import percentile
from v2x.text import printable

#: The seeds run on the in-process loopback bus (no broker): an outside stack cannot join them.
SWEEP_BUS = "loopback"
SWEEP_NO_OUTSIDE = (
    "A sweep over many seeds with an outside stack is not supported (nothing was run): sweep a copy of the scenario "
    "without 'external: true' (the built-in driver drives that actor), or run the seeds you need one at a time "
    "against a broker, the stack joining each run: 'v2x run SCENARIO --broker mqtt://HOST:PORT --run-id PREFIX "
    "--seed N' (docs/PROTOCOL.md)"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="run a scenario over many seeds: detection, false-warning and collision rates, lead times",
        description="Run a scenario over seeds 0..N-1 (in parallel processes, on the in-process loopback bus) "
        "and report per application the detection rate (warning expectations that held), the false-warning "
        "rate (no_warning expectations that failed), the lead time p5/p50/p95 (before the baseline's collision "
        "of the same pair, else the warning's own TTC or TTI) and the collision rate with and without V2X. "
        "--positioning and --network swap profiles to show how the apps degrade. A scenario with an outside "
        "stack (external: true) is refused: no stack can join the in-process bus.",
        epilog="Exit codes: 0 done (and every --min-/--max- bound met), 1 a bound given with --min-pass-rate, "
        "--min-detection, --max-false-warnings or --max-collision-rate not met (each named), 2 bad input (a "
        "scenario with an outside stack too; nothing was run), 3 a run "
        "could not complete (or a file could not be written), 130 / 143 interrupted by SIGINT / SIGTERM (the runs "
        "in progress and their worker processes stopped).",
    )
    sweep.add_argument("scenario", metavar="SCENARIO", help="scenario id or file")
    sweep.add_argument("--seeds", type=int, default=20, metavar="N", help="seeds 0..N-1 (default 20)")
    add_profile_options(sweep)
    sweep.add_argument(
        "--jobs",
        type=argtypes.count,
        default=None,
        metavar="J",
        help=f"parallel processes, at most {argtypes.MAX_PROCESSES} (default: cores)",
    )
    for flag, what in (
        ("--min-pass-rate", "the share of seeds in which every expectation held must be at least R"),
        ("--min-detection", "every app's detection rate must be at least R"),
        ("--max-false-warnings", "every app's false-warning rate must be at most R"),
        ("--max-collision-rate", "the V2X variant's collision rate must be at most R"),
    ):
        sweep.add_argument(flag, type=argtypes.share, metavar="R", help=f"for CI: {what} (0.95 or 95%%), else exit 1")
    sweep.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    sweep.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON document to FILE")
    sweep.add_argument("--svg", type=Path, metavar="FILE", help="also draw the rates and lead times as SVG")
    sweep.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write JUnit XML for a CI job's report: a testcase per --min-/--max- bound (failed when not met; "
        "'sweep' when none is given), each seed's failed expectations in its output",
    )
    sweep.set_defaults(handler=cmd_sweep)


# -- per seed --------------------------------------------------------------------------------------------


def _first_warning(events: list[dict[str, Any]], target: str, app: str, other: str | None) -> dict[str, Any] | None:
    for e in events:
        if (
            e["type"] == "warning"
            and e["variant"] == "v2x"
            and e["target"] == target
            and e["app"] == app
            and (other is None or e["other"] == other)
        ):
            return e
    return None


def seed_findings(result: dict[str, Any], expectations: list[dict[str, Any]]) -> dict[str, Any]:
    """What one seed's result says per app: detections, misses, false warnings, lead times, collisions.
    ``expectations`` are the scenario's (``type``, ``app``, ``target``, ``other``, ``variant``, ``name``)."""
    verdict = {(x["name"], x["variant"]): x["passed"] for x in result["expectations"]}
    events = result["events"]
    per_app: dict[str, dict[str, Any]] = defaultdict(lambda: {"expected": 0, "detected": 0, "quiet": 0, "false": 0})
    leads: dict[str, list[float]] = defaultdict(list)
    for x in expectations:
        if x["variant"] != "v2x" or x["type"] not in ("warning", "no_warning"):
            continue
        held = verdict.get((x["name"], x["variant"]), False)
        app = per_app[x["app"] or "any"]  # a no_warning expectation without an app: no app may warn
        if x["type"] == "warning":
            app["expected"] += 1
            app["detected"] += held
            first = _first_warning(events, x["target"], x["app"], x.get("other"))
            if held and first is not None:
                pair = sorted((x["target"], first["other"]))
                crash = next(
                    (
                        e["t_s"]
                        for e in events
                        if e["type"] == "collision" and e["variant"] == "baseline" and sorted(e["actors"]) == pair
                    ),
                    None,
                )
                if crash is not None:
                    leads[x["app"]].append(round(crash - first["t_s"], 3))
                elif first.get("ttc_s"):  # (0: the app has no time to a conflict, GLOSA's advice: no lead time)
                    leads[x["app"]].append(first["ttc_s"])
        else:
            app["quiet"] += 1
            app["false"] += not held
    collided = {
        variant: any(e["type"] == "collision" and e["variant"] == variant for e in events)
        for variant in result["metrics"]
    }
    # (once per seed: two expectations may share a name; "failed in 2 of 1 seeds" was printed: a diff review)
    failed = sorted({f"[{x['variant']}] {x['name']}" for x in result["expectations"] if not x["passed"]})
    return {"apps": dict(per_app), "leads": dict(leads), "collided": collided, "failed": failed}


def _run_seed(job: tuple[str, int, str | None, tuple[str, ...]]) -> dict[str, Any]:
    """One seed in a worker process (picklable arguments; returns plain data)."""
    import logging

    from v2x.run.cli import run_job
    from v2x.run.runner import run_scenario

    logging.getLogger().setLevel(logging.ERROR)
    path, seed, positioning, networks = job
    scenario = _variant_of(path, positioning, networks)
    result = run_job(run_scenario(scenario, seed=seed, broker=SWEEP_BUS))
    expectations = [e.model_dump(mode="json") for e in scenario.expectations]
    used = sorted({link for m in result["metrics"].values() for link, n in m["messages"]["sent"].items() if n})
    return {"seed": seed, "passed": result["passed"], "links": used, **seed_findings(result, expectations)}


def _variant_of(path: str, positioning: str | None, networks: Sequence[str]) -> Any:
    """The scenario at ``path`` with its profiles swapped as asked (ScenarioError, ValueError), as ``v2x run
    --positioning / --network`` swaps them (v2x.scenario.profiles)."""
    from v2x.scenario import load_scenario
    from v2x.scenario.profiles import with_profiles

    return with_profiles(load_scenario(path), positioning, networks)


# -- over seeds ------------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    scenario: str
    seeds: int
    positioning: str | None
    networks: list[str]
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    collision_rate: dict[str, float] = field(default_factory=dict)
    passed_rate: float = 0.0
    wall_seconds: float = 0.0
    failed_seeds: list[int] = field(default_factory=list)  # where an expectation failed: `v2x run --seed N` shows why
    collided_seeds: dict[str, list[int]] = field(default_factory=dict)  # per variant, the seeds with a collision
    # each expectation that failed in some seed ("[variant] name"), with the number of seeds it failed in
    failed_expectations: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, float] = field(default_factory=dict)  # the --min-/--max- bounds given, by name
    unmet: list[str] = field(default_factory=list)  # each bound not met, said in words

    def document(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seeds": self.seeds,
            "positioning": self.positioning,
            "network": self.networks,
            "apps": self.apps,
            "collision_rate": self.collision_rate,
            "passed_rate": self.passed_rate,
            "failed_seeds": self.failed_seeds,
            "collided_seeds": self.collided_seeds,
            "failed_expectations": self.failed_expectations,
            "bounds": self.bounds,
            "unmet": self.unmet,
            "wall_seconds": self.wall_seconds,
        }


def summarise(
    scenario_id: str, runs: list[dict[str, Any]], positioning: str | None, networks: list[str]
) -> SweepSummary:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"expected": 0, "detected": 0, "quiet": 0, "false": 0})
    leads: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for app, counts in run["apps"].items():
            for key, value in counts.items():
                totals[app][key] += value
        for app, values in run["leads"].items():
            leads[app].extend(values)
    apps = {}
    for app in sorted(totals):
        c = totals[app]
        apps[app] = {
            "warning_cases": c["expected"],
            "detection_rate": round(c["detected"] / c["expected"], 4) if c["expected"] else None,
            "silent_cases": c["quiet"],
            "false_warning_rate": round(c["false"] / c["quiet"], 4) if c["quiet"] else None,
            "lead_time_s": {
                q: percentile(leads[app], p, from_below=True) for q, p in (("p5", 5), ("p50", 50), ("p95", 95))
            },
        }
    variants = sorted({v for run in runs for v in run["collided"]})
    failures = Counter(name for run in runs for name in run.get("failed", []))
    return SweepSummary(
        scenario=scenario_id,
        seeds=len(runs),
        positioning=positioning,
        networks=networks,
        apps=apps,
        collision_rate={v: round(sum(r["collided"].get(v, False) for r in runs) / len(runs), 4) for v in variants},
        passed_rate=round(sum(r["passed"] for r in runs) / len(runs), 4) if runs else 0.0,
        failed_seeds=sorted(int(r["seed"]) for r in runs if not r["passed"]),
        collided_seeds={v: sorted(int(r["seed"]) for r in runs if r["collided"].get(v, False)) for v in variants},
        failed_expectations=dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def unmet(s: SweepSummary) -> list[str]:
    """Each of ``s.bounds`` that the sweep did not meet, in words (an app without cases of a rate is not held
    to it; a V2X variant that was not run has no collision rate to hold)."""
    out = []
    least = s.bounds.get("min_pass_rate")
    if least is not None and s.passed_rate < least:
        out.append(f"every expectation held in {s.passed_rate:.1%} of seeds, under --min-pass-rate {least:.1%}")
    for app, a in s.apps.items():
        least = s.bounds.get("min_detection")
        if least is not None and a["detection_rate"] is not None and a["detection_rate"] < least:
            out.append(f"{app} detection {a['detection_rate']:.1%}, under --min-detection {least:.1%}")
        most = s.bounds.get("max_false_warnings")
        if most is not None and a["false_warning_rate"] is not None and a["false_warning_rate"] > most:
            out.append(f"{app} false warnings {a['false_warning_rate']:.1%}, over --max-false-warnings {most:.1%}")
    most = s.bounds.get("max_collision_rate")
    rate = s.collision_rate.get("v2x")
    if most is not None and rate is not None and rate > most:
        out.append(f"collision rate with V2X {rate:.1%}, over --max-collision-rate {most:.1%}")
    return out


def unheld(s: SweepSummary) -> list[str]:
    """Each of ``s.bounds`` that nothing in the sweep could be held to (no app with cases of that rate, no V2X
    variant): said, so that a CI bound that checks nothing is not taken for one that passed."""
    cases = {"min_detection": "warning_cases", "max_false_warnings": "silent_cases"}
    out = [
        f"--{name.replace('_', '-')}: no app has {what.replace('_', ' ')}, so it held nothing"
        for name, what in cases.items()
        if name in s.bounds and not any(a[what] for a in s.apps.values())
    ]
    if "max_collision_rate" in s.bounds and "v2x" not in s.collision_rate:
        out.append("--max-collision-rate: no V2X variant was run, so it held nothing")
    return out


def junit_cases(s: SweepSummary, runs: list[dict[str, Any]]) -> list[CaseResult]:
    """The sweep as JUnit cases (newcomer review 7: a sweep had no JUnit): one per bound given, failed when
    not met, else one 'sweep' case; every case's output lists the seeds whose expectations did not all hold
    (a sweep expects some to fail: they fail a case only through --min-pass-rate)."""
    seeds = [
        f"seed {r['seed']}: " + ", ".join(r["failed"]) for r in sorted(runs, key=lambda r: r["seed"]) if r["failed"]
    ]
    wall = s.wall_seconds or 0.0
    if not s.bounds:
        return [CaseResult(s.scenario, "sweep", "pass", seeds, wall)]
    out = []
    for name in s.bounds:
        flag = "--" + name.replace("_", "-")
        missed = [line for line in s.unmet if f"{flag} " in line]
        held = [line for line in unheld(s) if line.startswith(f"{flag}:")]
        out.append(
            CaseResult(s.scenario, flag, "fail" if missed else "pass", [*missed, *held, *seeds], wall / len(s.bounds))
        )
    return out


def unused_links(networks: Sequence[str], runs: list[dict[str, Any]]) -> list[str]:
    """Each ``--network`` profile whose link carried no message in any run: the swap changed nothing (a
    newcomer review: a sweep over a Uu profile of a PC5-only scenario gave the same figures and no word)."""
    from v2x.impair import NETWORK_PROFILES

    used = {link for r in runs for link in r.get("links", ())}
    out = []
    for name in networks:
        link = LINK_OF_KIND[NETWORK_PROFILES[name].kind]
        if link not in used:
            out.append(f"--network {name}: no message went over the {link} link in any run, so it changed nothing")
    return out


def table(s: SweepSummary, source: str = "SCENARIO") -> str:
    """The summary as text; ``source``: the scenario as the command was given it (for the hint to run a
    seed again)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:.1f} %"

    def sec(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [("app", "detection", "false warnings", "lead p5 / p50 / p95 s")]
    for app, a in s.apps.items():
        lead = a["lead_time_s"]
        rows.append(
            (
                app,
                f"{pct(a['detection_rate'])} of {a['warning_cases']}",
                f"{pct(a['false_warning_rate'])} of {a['silent_cases']}",
                f"{sec(lead['p5'])} / {sec(lead['p50'])} / {sec(lead['p95'])}",
            )
        )
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    swaps = ", ".join(x for x in [s.positioning or "", *s.networks] if x) or "the scenario's own profiles"
    lines.insert(0, f"{s.scenario}: {s.seeds} seeds, {swaps}; all expectations held in {pct(s.passed_rate)}")
    crash = ", ".join(f"{v} {pct(r)}" for v, r in s.collision_rate.items())
    lines.append(f"collision rate: {crash}  ({s.wall_seconds:.1f} s)")
    if s.failed_seeds:  # (a newcomer review looped over v2x run --seed N to find them)
        shown = ", ".join(map(str, s.failed_seeds[:20])) + (" ..." if len(s.failed_seeds) > 20 else "")
        swapped = profile_args(s.positioning, s.networks)  # (v2x run takes the same options: one implementation)
        how = f"v2x run {shlex.quote(source)} {swapped + ' ' if swapped else ''}--seed N shows why"
        # (newcomer 9 read "seeds where an expectation failed: 0" as none: it meant seed 0)
        which = "seed" if len(s.failed_seeds) == 1 else "seeds"
        lines.append(f"an expectation failed in {which} {shown} ({how})")
        for name, n in list(s.failed_expectations.items())[:5]:  # which (newcomer 5 edited a copy to find out)
            lines.append(f"  failed in {n} of {s.seeds} seeds: {name}")
    return "\n".join(lines)


def svg(s: SweepSummary) -> str:
    """Bars for the detection and false-warning rates per app, and the lead-time p5-p95 range with p50, each
    plot with its axis (0, 50, 100 % and 0 to the longest lead time); the collision rate per variant below."""
    apps = list(s.apps)
    row_h, label_w, plot_w, pad = 28, 90, 260, 10
    rows_end = 40 + pad + row_h * max(len(apps), 1)
    height = rows_end + 52
    width = label_w + 2 * plot_w + pad * 4
    lead_max = max([a["lead_time_s"]["p95"] or 0.0 for a in s.apps.values()] + [1.0])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        f'<text x="{pad}" y="16">{s.scenario}: {s.seeds} seeds</text>',
        f'<text x="{label_w + pad}" y="34">detection (blue) / false warnings (red)</text>',
        f'<text x="{label_w + plot_w + 3 * pad}" y="34">lead time p5-p95, p50 (0 - {lead_max:.1f} s)</text>',
    ]
    for k, app in enumerate(apps):
        a = s.apps[app]
        y = 40 + pad + k * row_h
        out.append(f'<text x="{pad}" y="{y + 14}">{app}</text>')
        for j, (key, colour) in enumerate((("detection_rate", "#1f77b4"), ("false_warning_rate", "#d62728"))):
            value = a[key]
            if value is not None:
                w = round(plot_w * value, 1)
                out.append(
                    f'<rect x="{label_w + pad}" y="{y + j * 10}" width="{w}" height="9" fill="{colour}">'
                    f"<title>{key} {value * 100:.1f} %</title></rect>"
                )
        lead = a["lead_time_s"]
        if lead["p5"] is not None:
            x0 = label_w + plot_w + 3 * pad
            lo, mid, hi = (x0 + plot_w * (lead[q] or 0.0) / lead_max for q in ("p5", "p50", "p95"))
            out.append(f'<line x1="{lo:.1f}" y1="{y + 9}" x2="{hi:.1f}" y2="{y + 9}" stroke="#555" stroke-width="3"/>')
            out.append(
                f'<circle cx="{mid:.1f}" cy="{y + 9}" r="4" fill="#2ca02c"><title>p50 {lead["p50"]} s</title></circle>'
            )
    # the axes under the rows: rates 0-100 %, lead times 0 to the longest p95
    x_rate, x_lead = label_w + pad, label_w + plot_w + 3 * pad
    for x0, marks in (
        (x_rate, [(f, f"{f * 100:.0f} %") for f in (0.0, 0.5, 1.0)]),
        (x_lead, [(f, f"{f * lead_max:.1f} s") for f in (0.0, 0.5, 1.0)]),
    ):
        out.append(f'<line x1="{x0}" y1="{rows_end}" x2="{x0 + plot_w}" y2="{rows_end}" stroke="#999"/>')
        for f, label in marks:
            x = x0 + plot_w * f
            out.append(f'<line x1="{x:.1f}" y1="{rows_end}" x2="{x:.1f}" y2="{rows_end + 4}" stroke="#999"/>')
            # (the ends anchored inwards: "100 %" and the lead axis's "0.0 s", 20 px apart, were drawn over each other)
            anchor = "start" if f == 0.0 else "end" if f == 1.0 else "middle"
            out.append(f'<text x="{x:.1f}" y="{rows_end + 16}" text-anchor="{anchor}" font-size="10">{label}</text>')
    crash = ", ".join(f"{v} {r * 100:.1f} %" for v, r in s.collision_rate.items()) or "no variants"
    out.append(f'<text x="{pad}" y="{rows_end + 40}">collision rate: {crash}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _why(exc: Exception) -> str:
    """A run's failure in words: a RunError's own (a Python repr, ``RunError('...')``, was printed: a review),
    another exception's kind and text (a crash in a worker)."""
    from v2x.run.runner import RunError

    text = printable(str(exc))
    if isinstance(exc, RunError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def cmd_sweep(args: argparse.Namespace) -> int:
    """``v2x sweep``; SIGINT / SIGTERM stop the runs in progress (and the workers) and exit 130 / 143."""
    from v2x.run.cli import run_interruptibly

    # ("\n": after the progress line, which a terminal shows without one)
    return run_interruptibly(_cmd_sweep, args, "\nv2x sweep", "the runs in progress were stopped")


def _cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from v2x.run.cli import Interrupted
    from v2x.run.results import write_atomic
    from v2x.run.runner import warm_up_core
    from v2x.scenario import ScenarioError, find_scenario

    if args.seeds < 1 or args.seeds > 100_000:
        print("v2x sweep: --seeds wants 1..100000", file=sys.stderr)
        return EXIT_BAD_INPUT
    jobs = args.jobs or os.cpu_count() or 1
    if jobs < 1:
        print("v2x sweep: --jobs wants >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    networks: list[str] = args.network or []
    try:
        path = str(find_scenario(args.scenario))
        scenario = _variant_of(path, args.positioning, networks)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"v2x sweep: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from v2x.run.runner import unjoinable

    if (outside := unjoinable(scenario, SWEEP_BUS)) is not None:  # (it waited 30 s, then a RunError's repr: a review)
        print(f"v2x sweep: {outside}. {SWEEP_NO_OUTSIDE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    warm_up_core([scenario])  # compiled (or loaded) once here if needed; the workers load the cached kernels
    started = time.monotonic()
    work = [(path, seed, args.positioning, tuple(networks)) for seed in range(args.seeds)]
    runs: list[dict[str, Any]] = []
    tty = sys.stderr.isatty()

    def progress() -> None:
        n = len(runs)
        if tty:
            print(f"\rv2x sweep: {n}/{args.seeds} seeds", file=sys.stderr, end="", flush=True)
        elif n == args.seeds or n % max(1, args.seeds // 10) == 0:
            print(f"v2x sweep: {n}/{args.seeds} seeds, {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)

    try:
        if jobs == 1:
            for job in work:
                runs.append(_run_seed(job))
                progress()
        else:
            with job_pool(jobs) as pool:  # (a run that failed, or SIGINT / SIGTERM: the others go too)
                for run in pool.map(_run_seed, work, chunksize=max(1, args.seeds // (jobs * 4))):
                    runs.append(run)
                    progress()
    except Interrupted:
        raise  # run_interruptibly: 130 / 143
    except Exception as exc:  # a worker's RunError or crash: name it, do not print a traceback
        why = _why(exc)
        print(f"\nv2x sweep: a run could not complete: {why}", file=sys.stderr)
        if args.junit:  # why, for a CI job's report (it found no file: a diff review)
            with contextlib.suppress(OSError):
                error = CaseResult(scenario.id, "sweep", "error", [f"a run could not complete: {why}"])
                write_junit([error], args.junit, suite="v2x sweep")
        return EXIT_RUN_ERROR
    if tty:
        print(file=sys.stderr)
    summary = summarise(scenario.id, runs, args.positioning, networks)
    summary.wall_seconds = round(time.monotonic() - started, 3)
    bounds = {
        "min_pass_rate": args.min_pass_rate,
        "min_detection": args.min_detection,
        "max_false_warnings": args.max_false_warnings,
        "max_collision_rate": args.max_collision_rate,
    }
    summary.bounds = {k: v for k, v in bounds.items() if v is not None}
    summary.unmet = unmet(summary)
    doc = summary.document()
    print(json.dumps(doc, indent=1) if args.json else table(summary, args.scenario))
    try:
        if args.out:
            write_atomic(args.out, json.dumps(doc, indent=1) + "\n")
        if args.svg:
            write_atomic(args.svg, svg(summary))
        if args.junit:
            write_junit(junit_cases(summary, runs), args.junit, suite="v2x sweep")
    except OSError as exc:  # a full disk, a missing folder: said, exit 3 (was a traceback)
        wrote = exc.filename or args.out or args.svg or args.junit
        print(f"v2x sweep: cannot write {wrote}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUN_ERROR
    for line in [*unheld(summary), *unused_links(networks, runs)]:
        print(f"v2x sweep: {summary.scenario}: note: {line}", file=sys.stderr)
    for line in summary.unmet:
        print(f"v2x sweep: {summary.scenario}: {line}", file=sys.stderr)
    return EXIT_FAILED if summary.unmet else EXIT_OK
