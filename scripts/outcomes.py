#!/usr/bin/env python3
"""Record or compare the outcomes of the shipped scenarios over several seeds.

    .venv/bin/python scripts/outcomes.py record DIR [--seeds 0-4] [--scenario ID ...]
    .venv/bin/python scripts/outcomes.py compare DIR [--seeds 0-4] [--scenario ID ...]

For each scenario and seed it keeps the result document's ``passed``, ``expectations``, ``events`` and
``metrics`` sections, less the wall-clock figures (``metrics.<variant>.wall_seconds``), as one JSON file
``DIR/<scenario>-s<seed>.json``. ``compare`` runs the same scenarios again on the embedded broker and
exits 1 naming every file whose bytes differ (0 when all are byte-identical, 2 when a record is missing).
Metrics a record does not have (added to the result after it was taken) are named and left out.

Used to show that a refactoring left every outcome unchanged (records taken before it in
``tests/records/outcomes/``).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from v2x.argtypes import seed_list
from v2x.scenario import catalogue, load_scenario

SECTIONS = ("passed", "expectations", "events", "metrics")
WALL_CLOCK_KEYS = ("wall_seconds",)


def comparable(result: dict[str, Any]) -> str:
    """The deterministic sections of a result document as canonical JSON text."""
    doc = {k: result[k] for k in SECTIONS}
    doc["metrics"] = {
        variant: {k: v for k, v in m.items() if k not in WALL_CLOCK_KEYS} for variant, m in result["metrics"].items()
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _without_new_metrics(text: str, before: str) -> tuple[str, list[str]]:
    """``text`` without the metrics (per variant) that the record ``before`` does not have, and their names:
    a metric added after a record was taken (e.g. ``late_reports_by_actor``, session 16) is no difference
    in the outcome. Everything the record has is still compared byte for byte."""
    now, then = json.loads(text), json.loads(before)
    added: set[str] = set()
    for variant, m in now.get("metrics", {}).items():
        known = then.get("metrics", {}).get(variant)
        if known is None:
            continue
        for key in [k for k in m if k not in known]:
            added.add(key)
            del m[key]
    if not added:
        return text, []
    return json.dumps(now, indent=1, sort_keys=True) + "\n", sorted(added)


async def _run(path: Path, seed: int) -> str:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(path), seed=seed)
    return comparable(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="seeds, e.g. 0-4 or 0,3 (default 0-4)")
    parser.add_argument("--scenario", action="append", default=None, help="only this catalogue id (repeatable)")
    args = parser.parse_args(argv)
    paths = [p for p in catalogue() if args.scenario is None or p.stem in args.scenario]
    # Compile (or load) the kernels a large world runs compiled first, as `v2x run` does: compiled inside
    # the first tick, they stall it past the lockstep clock's retransmission timer, and the retransmitted
    # inputs show up as `duplicates` in the metrics of the first run.
    from v2x.run.runner import warm_up_core
    from v2x.scenario import load_scenario

    warm_up_core([load_scenario(p) for p in paths])
    args.dir.mkdir(parents=True, exist_ok=True)
    differ: list[str] = []
    missing: list[str] = []
    for path in paths:
        for seed in args.seeds:
            name = f"{path.stem}-s{seed}.json"
            text = asyncio.run(_run(path, seed))
            target = args.dir / name
            if args.action == "record":
                target.write_text(text, encoding="utf-8")
                print(f"recorded {target}", file=sys.stderr)
                continue
            if not target.is_file():
                missing.append(name)
                print(f"MISSING  {name}", file=sys.stderr)
                continue
            before = target.read_text(encoding="utf-8")
            text, added = _without_new_metrics(text, before)
            if added:
                print(f"         {name}: metrics added since, not compared: {', '.join(added)}", file=sys.stderr)
            if before == text:
                print(f"same     {name}", file=sys.stderr)
            else:
                differ.append(name)
                print(f"DIFFERS  {name}", file=sys.stderr)
                diff = difflib.unified_diff(
                    before.splitlines(), text.splitlines(), f"{name} (recorded)", f"{name} (now)", lineterm="", n=2
                )
                for line in list(diff)[:60]:
                    print("    " + line, file=sys.stderr)
    if args.action == "compare":
        total = len(paths) * len(args.seeds)
        print(f"{total - len(differ) - len(missing)} identical, {len(differ)} differ, {len(missing)} missing")
        if missing:
            return 2
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
