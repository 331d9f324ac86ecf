"""Argument types shared by the command lines (``argparse`` ``type=`` callables and pytest options), and the
commands' exit codes.

A value out of range is an argparse error, so every command exits 2 (bad input) with a one-line message
naming the option, never with a traceback from deep inside (a negative seed reached numpy, a port over
65535 the socket's ``bind``).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence

# Every ``v2x`` command's exit status (``v2x --help``; ``v2x conformance``: 1 a check failed, 3 no stack joined).
EXIT_OK = 0  # all expectations held (checks passed; the command did what it was asked)
EXIT_FAILED = 1  # an expectation (a check) failed
EXIT_BAD_INPUT = 2  # bad input: nothing ran (argparse exits 2 too)
EXIT_RUN_ERROR = 3  # a run error: broker unreachable, an agent failed or went silent, no stack joined
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a Unix tool's status is when its reader went away

DAY_S = 86400.0  # the longest wait or timeout a command takes
SCENARIO_MAX_S = 3600.0  # a scenario's longest duration_s (v2x.scenario.model)
# A scenario's most actors (v2x.scenario.model): a run's built-in agents share one broker connection with a
# subscription per actor plus one, and the embedded broker takes at most SCENARIO_MAX_ACTORS + 1 filters per
# connection (v2x.net.amqtt_fanout.MAX_FILTERS_PER_CLIENT). Large traffic is `flows` (background vehicles).
SCENARIO_MAX_ACTORS = 4_999
# The largest counts a command takes (attack review 9: `bench core --n 99999999999999999999` grew ~1 GB/s, and
# `worker --of 99999999999999` spun for good before a word):
MAX_PROCESSES = 1024  # processes a command starts or waits for: fleets (--workers, --of), parallel runs (--jobs)
BENCH_MAX_VEHICLES = 100_000  # bench core / traffic --n (documented runs: 1,000 to 20,000; 10^6 did not fit in 4 GB)
# bench stack / realtime --n: their road, 8 lanes at 25 m spacing, within the loader's room for 100,000
# background vehicles (one every 6 m)
BENCH_MAX_STACK_VEHICLES = 24_000
BENCH_MAX_AGENTS = 796  # bench stack --baseline-n: its 4 lanes of 6 km hold 796 cars 30 m apart from 50 m
BENCH_MAX_TICKS = 1_000_000  # a benchmark's timed ticks per N (--ticks: 20 and 200 by default)
JOIN_TIMEOUT_S = 30.0  # how long a run waits for its outside stacks (external: true) to join, unless told

# Run and actor ids, as the topics carry them (v2x.net.topics): 1-64 letters, digits, "_", ".", "-" (no MQTT
# wildcards). A --run-id PREFIX gets the variant appended, the longest being "-baseline".
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LONGEST_SUFFIX = len("-baseline")
RUN_ID_RULE = f"use 1-{64 - _LONGEST_SUFFIX} characters of A-Z a-z 0-9 _ . - (the variant is appended: PREFIX-v2x)"


# A seed is below 2**63 (at most 19 digits), so that a run id ``{scenario}-{variant}-s{seed}-{6 hex}`` fits the
# topics' 64 characters with the scenario id cut to what is left (``random_run_id``; golden records the same).
SEED_LIMIT = 2**63


def _int(text: str) -> int:
    """An integer as the scenario loader takes one: ASCII digits with an optional sign (``int()`` also took
    ``1_0``, non-ASCII digits and surrounding blanks)."""
    body = text.strip()
    if not re.fullmatch(r"[-+]?[0-9]+", body) or len(body) > 40:  # (not "-+5": int() refuses it, ValueError)
        raise argparse.ArgumentTypeError(f"an integer, got {text[:60]!r}")
    return int(body)


def seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**63 - 1 (numpy's seeds are non-negative; the bound keeps run
    ids within the topics' 64 characters)."""
    value = _int(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed from 0 to 2**63-1, got {value}")
    return value


def random_run_id(scenario_id: str, variant: str, seed: int, nonce: str) -> str:
    """The run id of a run not given one: ``{scenario}-{variant}-s{seed}-{nonce}``, the scenario id cut short
    so that the whole stays a topic id (64 characters; a scenario id may be 64 long itself)."""
    tail = f"-{variant}-s{seed}-{nonce}"
    return scenario_id[: max(1, 64 - len(tail))] + tail


MAX_SEEDS = 1000  # seeds one seed list names (v2x check --seeds; scripts/outcomes.py)


def seed_list(text: str) -> list[int]:
    """Seeds as ranges and single seeds, comma-separated (``0-4``, ``0,3,7``, ``0-2,9``): the seeds in
    ascending order, each once; at most ``MAX_SEEDS`` of them."""
    seeds: set[int] = set()
    for part in text.split(","):
        lo_text, dash, hi_text = part.strip().partition("-")
        lo = seed(lo_text)
        hi = seed(hi_text) if dash else lo
        if hi < lo:
            raise argparse.ArgumentTypeError(f"a range from low to high (e.g. 0-4), got {part.strip()!r}")
        if hi - lo >= MAX_SEEDS or len(more := seeds.union(range(lo, hi + 1))) > MAX_SEEDS:  # (each seed once)
            raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds, got {text!r}")
        seeds = more
    return sorted(seeds)


def seed_spec(seeds: Sequence[int]) -> str:
    """Ascending seeds as :func:`seed_list` reads them, runs as ranges: ``0-4``, ``0,3,7``, ``0-2,9``."""
    parts: list[str] = []
    k = 0
    while k < len(seeds):
        end = k
        while end + 1 < len(seeds) and seeds[end + 1] == seeds[end] + 1:
            end += 1
        parts.append(str(seeds[k]) if end == k else f"{seeds[k]}-{seeds[end]}")
        k = end + 1
    return ",".join(parts)


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port 1-65535, got {value}")
    return value


def listen_port(text: str) -> int:
    """A TCP port to listen on, 1-65535, or 0: any free one (the server says which)."""
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port 1-65535 (or 0: any free one), got {value}")
    return value


def _float(text: str) -> float:
    """A number as the scenario loader takes one: ASCII, no ``_`` (``float()`` also took ``1_0`` and
    non-ASCII digits). Raises ValueError."""
    body = text.strip()
    if not body.isascii() or "_" in body:
        raise ValueError(text)
    return float(body)


def integer(text: str) -> int:
    """An integer (ASCII digits, an optional sign), its range checked by the command."""
    return _int(text)


def real(text: str) -> float:
    """A number (ASCII, no ``_``), its range checked by the command."""
    try:
        return _float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, got {text[:60]!r}") from None


def count_to(most: int, least: int = 1) -> Callable[[str], int]:
    """A count: an integer from ``least`` to ``most`` (each count has a bound: no option may make a command
    take the machine's memory or spin for good before it says anything)."""

    def parse(text: str) -> int:
        value = _int(text)
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(
                f"N from {least} to {most:,}, got {value}"
                if most >= 10_000
                else f"N from {least} to {most}, got {value}"
            )
        return value

    return parse


count = count_to(MAX_PROCESSES)
"""A count of processes (fleet workers, parallel runs): an integer from 1 to ``MAX_PROCESSES``."""


def seconds(most: float) -> Callable[[str], float]:
    """A duration in seconds: a finite number > 0 and at most ``most`` (``--seconds 1e308`` ran a benchmark
    for good; ``nan`` and ``inf`` passed the hand-written checks that took their place before)."""

    def parse(text: str) -> float:
        try:
            value = _float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"seconds, got {text[:60]!r}") from None
        if not (math.isfinite(value) and 0 < value <= most):
            raise argparse.ArgumentTypeError(f"seconds > 0 and at most {most:g}, got {text}")
        return value

    return parse


def valid_run_id_prefix(prefix: str) -> bool:
    """A ``--run-id`` prefix: a topic id that stays one (<= 64 characters) with ``-{variant}`` appended."""
    return bool(ID_PATTERN.fullmatch(prefix)) and len(prefix) <= 64 - _LONGEST_SUFFIX


def run_id_prefix(text: str) -> str:
    """A ``--run-id`` prefix (:func:`valid_run_id_prefix`), else ``RUN_ID_RULE``."""
    if not valid_run_id_prefix(text):
        raise argparse.ArgumentTypeError(RUN_ID_RULE)
    return text


def add_join_timeout(add_option: Callable[..., object], help: str, name: str = "--join-timeout") -> None:
    """The option of how long a run waits for its outside stacks to join: seconds, default ``JOIN_TIMEOUT_S``.
    ``add_option``: an argparse parser's ``add_argument`` or a pytest option group's ``addoption``."""
    add_option(name, type=seconds(DAY_S), default=JOIN_TIMEOUT_S, metavar="S", help=help)


def share(text: str) -> float:
    """A share, 0 to 1: ``0.95`` or ``95%`` (a rate a command is held to)."""
    body = text.strip()
    scale = 100.0 if body.endswith("%") else 1.0
    try:
        value = _float(body.removesuffix("%")) / scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"a share 0-1 or a percentage (0.95, 95%), got {text[:60]!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"a share 0-1 or a percentage 0-100%, got {text}")
    return value
