"""``v2x impair``: list the impairment profiles and sample one of them.

* ``v2x impair list [--kind positioning|network]`` prints every profile with its parameters and sources.
* ``v2x impair sample PROFILE --hz H --seconds S --seed N [--csv FILE] [--png FILE]``

  - a positioning profile: the error trace of one stationary receiver (``--speed`` makes it move, which
    matters for dead reckoning), columns ``t,east_m,north_m,state,reported_sigma_m``;
  - a network profile: ``H x S`` packets at each distance from 0 m to the link's range (1000 m for
    cellular and wired links) in 10 m steps, columns ``distance_m,delivery_probability,delivered_fraction,
    delay_p50_ms,delay_p95_ms,delay_p99_ms`` (delays of the delivered packets).

Exit codes: 0 written, 2 bad input (unknown profile, bad number, unwritable file).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import math
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_OK
from v2x.impair._network import NETWORK_PROFILES, network_link
from v2x.impair._positioning import PositioningModel
from v2x.impair._positioning_profiles import POSITIONING_PROFILES

NETWORK_STEP_M = 10.0
MAX_SPEED_MPS = 140.0  # --speed: a scenario's fastest (v2x.scenario.model speed_mps le=140); 1e308 gave inf rows
CELLULAR_SAMPLE_RANGE_M = 1000.0


IMPAIR_EXIT_CODES = "Exit codes: 0 done, 2 bad input (an unknown profile, a bad option) or an output it cannot write."


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``impair`` command (with ``list`` and ``sample``) to a ``v2x`` sub-parser set."""
    impair = sub.add_parser(
        "impair",
        help="list and sample the positioning and network impairment profiles",
        description="Positioning noise (5G + Beidou) and network impairment profiles.",
        epilog=IMPAIR_EXIT_CODES,
    )
    actions = impair.add_subparsers(dest="impair_command", metavar="ACTION", required=True)

    lister = actions.add_parser(
        "list",
        help="print the profiles with their parameters and sources",
        description="Every positioning and network profile a scenario can name, with its figures and sources.",
        epilog="Exit codes: 0 listed, 2 a bad option.",
    )
    lister.add_argument(
        "--kind", choices=("all", "positioning", "network"), default="all", help="which profiles (default all)"
    )
    lister.set_defaults(handler=_list_handler)

    sampler = actions.add_parser(
        "sample",
        epilog=IMPAIR_EXIT_CODES,
        help="write a sample trace of one profile to CSV (and PNG)",
        description=(
            "Positioning profile: the error trace of one receiver, stationary unless --speed"
            " (t, east_m, north_m, state, reported_sigma_m). Network profile: delivery probability and"
            " delay percentiles against distance, from H x S packets per distance. Give --csv, --png or both."
        ),
    )
    sampler.add_argument("profile", metavar="PROFILE", help="a profile name (see `v2x impair list`)")
    sampler.add_argument("--hz", type=argtypes.real, default=10.0, help="update / packet rate (default 10)")
    sampler.add_argument("--seconds", type=argtypes.real, default=60.0, help="duration (default 60)")
    sampler.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default 0)")
    sampler.add_argument("--csv", metavar="FILE", help="CSV output file ('-' for stdout)")
    sampler.add_argument("--png", metavar="FILE", help="draw the trace to this PNG file")
    sampler.add_argument(
        "--speed",
        type=argtypes.real,
        default=0.0,
        help=f"positioning: receiver speed in m/s, at most {MAX_SPEED_MPS:g} as in a scenario (default 0, stationary)",
    )
    sampler.add_argument(
        "--cold-start",
        action="store_true",
        help="positioning: start unconverged (PPP convergence, 5G first fix) instead of in steady state",
    )
    sampler.set_defaults(handler=_sample_handler)


# ---------------------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------------------


def _list_handler(args: argparse.Namespace) -> int:
    sys.stdout.write(format_profiles(args.kind))
    return EXIT_OK


def format_profiles(kind: str = "all") -> str:
    """The text ``v2x impair list`` prints."""
    out = io.StringIO()
    if kind in ("all", "positioning"):
        out.write("Positioning profiles (sigma per horizontal axis, 1 sigma)\n\n")
        for p in POSITIONING_PROFILES.values():
            out.write(f"{p.name}: {p.summary}\n")
            out.write(f"    parameters: {p.describe()}\n")
            out.write(f"    source: {p.source}\n")
            for note in p.notes:
                out.write(f"    - {note}\n")
            out.write("\n")
    if kind in ("all", "network"):
        out.write("Network profiles (one-way delay; loss and delay applied by the emulator, not TCP)\n\n")
        for n in NETWORK_PROFILES.values():
            out.write(f"{n.name} [{n.kind}]: {n.summary}\n")
            for key, value in n.parameters().items():
                out.write(f"    {key}: {value}\n")
            out.write(f"    source: {n.source}\n")
            for assumption in n.assumptions:
                out.write(f"    - assumption: {assumption}\n")
            out.write("\n")
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------------------


def _bad_input(message: str) -> int:
    print(f"v2x impair: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _sample_handler(args: argparse.Namespace) -> int:
    name: str = args.profile
    if not args.csv and not args.png:
        return _bad_input("give --csv FILE ('-': stdout), --png FILE, or both")
    if name not in POSITIONING_PROFILES and name not in NETWORK_PROFILES:
        return _bad_input(
            f"unknown profile {name!r}; positioning: {', '.join(POSITIONING_PROFILES)};"
            f" network: {', '.join(NETWORK_PROFILES)}"
        )
    hz, seconds = float(args.hz), float(args.seconds)
    if not (math.isfinite(hz) and hz > 0.0):
        return _bad_input(f"--hz must be a positive number, got {args.hz}")
    if not (math.isfinite(seconds) and seconds > 0.0):
        return _bad_input(f"--seconds must be a positive number, got {args.seconds}")
    if not hz * seconds <= 10_000_000 or round(hz * seconds) < 1:  # (first: 1e308 x 1e308 is inf, which round refuses)
        return _bad_input("--hz x --seconds must give between 1 and 10 000 000 samples")
    if not (math.isfinite(args.speed) and 0.0 <= args.speed <= MAX_SPEED_MPS):
        return _bad_input(f"--speed must be 0 to {MAX_SPEED_MPS:g} m/s, got {args.speed}")
    if name in NETWORK_PROFILES and (args.speed or args.cold_start):  # (taken and ignored: newcomer 5)
        return _bad_input(f"--speed and --cold-start are for positioning profiles; {name} is a network profile")
    if args.png and importlib.util.find_spec("matplotlib") is None:
        return _bad_input(
            "--png needs matplotlib (the package's plot extra): pip install matplotlib, or pip install '.[plot]' "
            "in a clone"
        )
    rng = np.random.default_rng(args.seed)
    if name in POSITIONING_PROFILES:
        header, rows = sample_positioning(name, hz, seconds, rng, speed_mps=args.speed, cold_start=args.cold_start)
    else:
        header, rows = sample_network(name, hz, seconds, rng)
    try:
        if args.png:  # (first: a reader of the CSV on stdout that stops early, `| head`, lost the picture)
            _draw(name, header, rows, args.png)
        if args.csv:
            _write_csv(args.csv, header, rows)
    except BrokenPipeError:  # the reader went away: as a Unix tool does, quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush of the rest at exit)
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        return _bad_input(f"cannot write output: {exc}")
    wrote = [("stdout" if args.csv == "-" else args.csv) if args.csv else "", args.png or ""]
    print(f"v2x impair sample: {len(rows)} rows of {name} -> {' and '.join(w for w in wrote if w)}", file=sys.stderr)
    return EXIT_OK


Row = list[float | str]


def sample_positioning(
    name: str, hz: float, seconds: float, rng: np.random.Generator, *, speed_mps: float = 0.0, cold_start: bool
) -> tuple[list[str], list[Row]]:
    """Error trace of one receiver (moving east at ``speed_mps``; no zones)."""
    model = PositioningModel([name], [], rng, cold_start=cold_start)
    dt = 1.0 / hz
    rows: list[Row] = []
    for k in range(1, round(hz * seconds) + 1):
        t = k * dt
        fix = model.step(t, dt, np.array([[speed_mps * t, 0.0]]), np.array([speed_mps]))
        e, n = fix.error_en[0]
        rows.append([round(t, 9), float(e), float(n), fix.state[0], float(fix.sigma_major_m[0])])
    return ["t", "east_m", "north_m", "state", "reported_sigma_m"], rows


def sample_network(name: str, hz: float, seconds: float, rng: np.random.Generator) -> tuple[list[str], list[Row]]:
    """Delivery probability (model and drawn) and delay percentiles of delivered packets per distance."""
    link = network_link(name)
    top = link.max_range_m if math.isfinite(link.max_range_m) else CELLULAR_SAMPLE_RANGE_M
    distances = np.arange(0.0, math.ceil(top / NETWORK_STEP_M) * NETWORK_STEP_M + 0.5, NETWORK_STEP_M)
    packets = round(hz * seconds)
    rows: list[Row] = []
    for d in distances:
        at = np.full(packets, d)
        p = float(link.delivery_probability(at[:1])[0])
        delivered = rng.random(packets) < link.delivery_probability(at)
        delays_ms = link.sample_delay_s(rng, at[delivered]) * 1e3
        if delays_ms.size:
            p50, p95, p99 = (float(v) for v in np.quantile(delays_ms, (0.5, 0.95, 0.99)))
        else:
            p50 = p95 = p99 = math.nan
        rows.append([float(d), p, float(delivered.mean()), p50, p95, p99])
    header = [
        "distance_m",
        "delivery_probability",
        "delivered_fraction",
        "delay_p50_ms",
        "delay_p95_ms",
        "delay_p99_ms",
    ]
    return header, rows


def _format(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return ""
    return f"{value:.6g}"


def _write_csv(path: str, header: Sequence[str], rows: Sequence[Row]) -> None:
    def write(stream: TextIO) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([_format(v) for v in row] for row in rows)

    if path == "-":
        write(sys.stdout)
    else:
        with open(path, "w", encoding="utf-8", newline="") as stream:
            write(stream)


def _draw(name: str, header: Sequence[str], rows: Sequence[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(zip(*rows, strict=True))
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    try:
        if header[0] == "t":
            t = np.array(columns[0], dtype=float)
            east, north = np.array(columns[1], dtype=float), np.array(columns[2], dtype=float)
            sigma = np.array(columns[4], dtype=float)
            axes[0].fill_between(t, -2 * sigma, 2 * sigma, color="0.85", label="reported ±2σ")
            axes[0].plot(t, east, lw=0.8, label="east error")
            axes[0].plot(t, north, lw=0.8, label="north error")
            axes[0].set_ylabel("error [m]")
            axes[0].legend(loc="upper right")
            states = list(dict.fromkeys(str(s) for s in columns[3]))
            codes = np.array([states.index(str(s)) for s in columns[3]])
            axes[1].plot(t, sigma, color="k", lw=1.0, label="reported σ")
            axes[1].set_ylabel("reported σ [m]")
            # From zero, with headroom: a constant sigma is a flat line, not noise magnified by autoscaling.
            finite = sigma[np.isfinite(sigma)]
            axes[1].set_ylim(0.0, max(float(finite.max()) * 1.25 if finite.size else 1.0, 0.01))
            state_axis = axes[1].twinx()
            state_axis.step(t, codes, where="post", color="tab:red", lw=0.8, label="receiver state (right axis)")
            state_axis.set_yticks(range(len(states)), states)
            lines = axes[1].get_lines() + state_axis.get_lines()
            axes[1].legend(lines, [str(line.get_label()) for line in lines], loc="upper right")
            axes[1].set_xlabel("t [s]")
            fig.suptitle(f"positioning profile {name}")
        else:
            d = np.array(columns[0], dtype=float)
            axes[0].plot(d, np.array(columns[1], dtype=float), label="model")
            axes[0].plot(d, np.array(columns[2], dtype=float), ".", ms=3, label="drawn")
            axes[0].set_ylabel("delivery probability")
            axes[0].set_ylim(-0.02, 1.02)
            axes[0].legend(loc="upper right")
            for i, label in ((3, "p50"), (4, "p95"), (5, "p99")):
                axes[1].plot(d, np.array(columns[i], dtype=float), label=label)
            axes[1].set_ylabel("one-way delay [ms]")
            axes[1].set_xlabel("distance [m]")
            axes[1].legend(loc="upper right")
            fig.suptitle(f"network profile {name}")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
