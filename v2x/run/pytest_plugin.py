"""A pytest plugin: ``pytest scenarios/`` (or any folder of scenario files) collects every scenario file as
test items, one per variant (``fcw.yaml::v2x``, ``fcw.yaml::baseline``), so that a user's CI needs nothing
but pytest.

An item passes when every expectation of its variant held and, if the scenario has a golden record
(``golden/<id>.json`` beside it, written by ``v2x check --update-golden``), the variant's outcome matches it
within the record's tolerances. A scenario file that does not load is one failing item naming the field.

Registered through the ``pytest11`` entry point; it collects a ``.yaml`` file only if it looks like a
scenario: three or more of a scenario's top-level keys (``id:``, ``origin:``, ``duration_s:``, ``road:``,
``actors:``, ``expectations:``, ...), so that one with a key misspelt is collected and fails naming it.
Options: ``--v2x-broker URL`` (default the embedded broker), ``--v2x-seed N`` (compared with that seed's
golden record, as ``v2x check --seed N``; default: the main record's seed, else 0), ``--v2x-run-id PREFIX``
(the scenario with outside stacks, ``external: true``, runs its variants as ``PREFIX-v2x``,
``PREFIX-baseline``, said before the items run, so that each stack knows which run to join; at most one such
scenario per session) and ``--v2x-join-timeout S`` (how long each of its runs waits for them; default 30).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from v2x import argtypes

# A scenario's top-level keys: a file with three or more of them is taken for one (with both `id:` and `actors:`
# required, a file with one of them misspelt was not collected, and pytest passed without it: newcomer review 6)
_SCENARIO_KEYS = re.compile(
    r"^(id|name|origin|duration_s|tick_s|road|actors|flows|sumo|expectations|variants|network|positioning):",
    re.MULTILINE,
)
_SCENARIO_KEYS_NEEDED = 3
# The scenario files collected in this session, by id: two with one id would share a golden record
_BY_ID = pytest.StashKey[dict[str, Path]]()
# The scenario files collected with outside stacks (external: true), by id: which runs their stacks join
_OUTSIDE = pytest.StashKey[dict[str, "ScenarioFile"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("v2x", "v2x-testbed scenario files")
    group.addoption("--v2x-broker", default="embedded", help="broker for scenario items (default: embedded)")
    group.addoption(
        "--v2x-seed",
        type=argtypes.seed,
        default=None,
        help="seed for scenario items, compared with its own golden record (default: the main record's, else 0)",
    )
    group.addoption(
        "--v2x-run-id",
        type=argtypes.run_id_prefix,  # a prefix as `v2x run --run-id` takes it
        default=None,
        metavar="PREFIX",
        help="fixed run ids PREFIX-v2x, PREFIX-baseline for the scenario with outside stacks (external: true), "
        "said before the items run; one such scenario per session (default: random run ids)",
    )
    argtypes.add_join_timeout(
        group.addoption,
        f"how long each run waits for the outside stacks to join (default {argtypes.JOIN_TIMEOUT_S:g})",
        name="--v2x-join-timeout",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Which runs the outside stacks join, before the first item runs (so that they can be started)."""
    from v2x.run.runner import fixed_run_ids, outside_stacks

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    prefix = session.config.getoption("--v2x-run-id")
    for file in session.config.stash.get(_OUTSIDE, {}).values():
        who = f"v2x: {file.scenario.id}: the outside stack(s) of {', '.join(outside_stacks(file.scenario))}"
        if prefix is None:
            reporter.write_line(
                f"{who} join random run ids, each logged when its run waits for them (--log-cli-level=WARNING "
                "shows it; give --v2x-run-id PREFIX to know them beforehand)"
            )
        else:
            ids = list(fixed_run_ids(prefix, file.scenario.variants).values())
            reporter.write_line(f"{who} join run {', then run '.join(ids)} (one item each)")


def _looks_like_scenario(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            head = stream.read(256 * 1024).decode("utf-8", errors="replace")
    except OSError:
        return False
    return len(set(_SCENARIO_KEYS.findall(head))) >= _SCENARIO_KEYS_NEEDED


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and _looks_like_scenario(file_path):
        item: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return item
    return None


class ScenarioFailure(Exception):
    """A scenario item's failure: the lines to show."""


class ScenarioFile(pytest.File):
    """One scenario file; each of its items (a variant) runs that variant alone, so that each item's time
    (pytest's durations, the JUnit file) is its own: one run of both variants put the whole time on the
    first item. A variant run alone gives the outcome it has in a run of all (its random streams are its
    own)."""

    _golden: dict[str, Any] | None = None
    _seed: int | None = None
    _error: str = ""  # why a run could not complete (then every variant fails with it)

    def collect(self) -> Iterator[pytest.Item]:
        from v2x.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(self.path)
        except ScenarioError as exc:
            yield InvalidScenarioItem.from_parent(self, name="load", message=str(exc))
            return
        from v2x.scenario import same_ids

        seen = self.config.stash.setdefault(_BY_ID, {})
        other = seen.setdefault(scenario.id, self.path)
        for clash in same_ids([(other, scenario), (self.path, scenario)]):
            yield InvalidScenarioItem.from_parent(self, name="load", message=str(clash))
            return
        from v2x.run.runner import unjoinable

        why = unjoinable(scenario, self.config.getoption("--v2x-broker"))
        if why is not None:
            yield InvalidScenarioItem.from_parent(self, name="load", message=f"{self.path}: {why}")
            return
        from v2x.run.runner import outside_stacks

        if outside_stacks(scenario):
            outside = self.config.stash.setdefault(_OUTSIDE, {})
            prefix = self.config.getoption("--v2x-run-id")
            if prefix is not None and outside and scenario.id not in outside:
                first = next(iter(outside))
                why = (
                    f"--v2x-run-id {prefix}: {first} and {scenario.id} both have outside stacks (external: true); a "
                    "run id names one scenario's runs: run each in a pytest session of its own"
                )
                yield InvalidScenarioItem.from_parent(self, name="load", message=f"{self.path}: {why}")
                return
            outside[scenario.id] = self
        self.scenario = scenario
        for variant in scenario.variants:
            yield ScenarioItem.from_parent(self, name=variant, variant=variant)

    def outcome(self, variant: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The result of ``variant``'s run and the golden record (read once for the file's variants); a run
        that cannot complete (an unreachable broker, a silent agent) fails this variant and every later one
        with its one-line reason, as ``v2x check`` says it (it was a 2,700-line traceback per variant: a
        newcomer review)."""
        if self._error:
            raise ScenarioFailure(self._error)
        from v2x.run.runner import RunError, run_scenario, warm_up_core

        if self._seed is None:
            from v2x.run.check import golden_records

            seed = self.config.getoption("--v2x-seed")
            [rec] = golden_records(self.path, self.scenario.id, None if seed is None else [seed])
            self._golden, self._seed = rec.record, rec.seed
            warm_up_core([self.scenario])
        broker = self.config.getoption("--v2x-broker")
        outside = self.config.stash.get(_OUTSIDE, {}).get(self.scenario.id) is self
        run_id = self.config.getoption("--v2x-run-id") if outside else None  # (others: random)
        join_s = self.config.getoption("--v2x-join-timeout")
        try:
            result = asyncio.run(
                run_scenario(
                    self.scenario,
                    seed=self._seed,
                    broker=broker,
                    variants=[variant],
                    run_id=run_id,
                    join_timeout_s=join_s,
                )
            )
        except RunError as exc:
            self._error = f"run error: {exc}"
            raise ScenarioFailure(self._error) from None
        return result, self._golden


class ScenarioItem(pytest.Item):
    def __init__(self, *, variant: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.variant = variant

    def runtest(self) -> None:
        from v2x.run.check import check_result

        assert isinstance(self.parent, ScenarioFile)
        result, golden = self.parent.outcome(self.variant)
        for case in check_result(result, golden, 0.0):
            if case.variant != self.variant:
                continue
            # as `v2x check`: a variant without a record fails (a repository that forgot to commit golden/
            # got a green pytest that checked the expectations only: an adopter review)
            # (--v2x-seed N: the record of seed N, as `v2x check --seed N` takes it)
            seed = self.config.getoption("--v2x-seed")
            of_seed, with_seed = ("", "") if seed is None else (f" of seed {seed}", f" --seed {seed}")
            problems = [
                f"no golden record{of_seed}: create it with `v2x check {self.path} --update-golden{with_seed}`"
                if line.startswith("no golden record")
                else line
                for line in case.lines
            ]
            if problems:
                raise ScenarioFailure("\n".join(problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailure):
            # the first problem on the first line: pytest's short summary shows that line alone (it showed
            # "crossing.yaml [v2x]:" and nothing of why: newcomer review 6)
            first, *rest = str(excinfo.value).split("\n")
            return "\n  ".join([f"{self.path.name} [{self.variant}]: {first}", *rest])
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.path.name} [{self.variant}]"


class InvalidScenarioItem(pytest.Item):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise ScenarioFailure(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario file {self.path.name}"
