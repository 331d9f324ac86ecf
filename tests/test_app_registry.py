"""The application registry (v2x/apps/registry.py) agrees with the proto enum and with everything derived
from it; a package can register an application of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.apps import misbehaviour, registry, thresholds
from v2x.apps.registry import (
    AppSpec,
    Figure,
    OnBoardView,
    Raised,
    RunsOn,
    app_names,
    figures,
    onboard_apps,
    registered,
)
from v2x.apps.vehicle_events import placement
from v2x.run.report import APP_COLOURS, WARNING_FIGURES
from v2x.run.results import FIGURE_KEYS
from v2x.run.runner import build_agents, environment
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR, ScenarioError
from v2x.wire import protocol, testbed_pb2
from v2x.wire.tables import APP_BY_NAME, APP_NAME

V2X = Path(__file__).resolve().parents[1] / "v2x"
# Proto enum values no app implements yet (planned apps).
NOT_IMPLEMENTED: set[str] = set()
# Thresholds an app declares for its family, not under its own name.
SHARED_THRESHOLDS = {"v2v_event_max_heading_deg"}


def test_every_registered_app_is_the_proto_enum_value_of_its_name() -> None:
    for name, spec in registered().items():
        assert testbed_pb2.Application.Name(spec.code) == f"APP_{name.upper()}"
        assert APP_NAME[spec.code] == name and APP_BY_NAME[name] == spec.code


def test_every_enum_value_is_registered_or_known_to_be_unimplemented() -> None:
    enum_names = set(APP_BY_NAME)
    assert set(app_names()) | NOT_IMPLEMENTED == enum_names
    assert not set(app_names()) & NOT_IMPLEMENTED
    # no code outside the app modules names an app's wire code by hand
    app_modules = {V2X.parent / (module.replace(".", "/") + ".py") for module in registry.BUILTIN_MODULES}
    for path in set(V2X.rglob("*.py")) - app_modules:
        if not path.name.endswith("_pb2.py"):
            assert set(re.findall(r"testbed_pb2\.APP_([A-Z]+)", path.read_text())) <= {"UNSPECIFIED"}, path


def test_names_codes_and_colours_are_unique() -> None:
    specs = list(registered().values())
    for attr in ("name", "code", "colour"):
        values = [getattr(s, attr) for s in specs]
        assert len(values) == len(set(values)), attr
    assert {s.name: s.colour for s in specs} == APP_COLOURS


def test_every_figure_an_app_reports_is_declared_once() -> None:
    declared = figures()
    assert len({f.name for f in declared}) == len(declared)
    assert tuple(f.name for f in declared) == FIGURE_KEYS
    # the SDK's list (it checks a warning's name without loading the apps): the built-in apps' figures, no more
    assert tuple(f.name for f in declared) == protocol.FIGURE_NAMES
    assert tuple((f.name, f.label, f.unit) for f in declared) == WARNING_FIGURES
    # Advisory.figure_name comes from the declarations only: no literal figure name in the code
    for path in V2X.rglob("*.py"):
        assert not re.search(r"figure_name=\"", path.read_text()), path


def test_thresholds_are_the_common_table_the_misbehaviour_checks_and_each_apps_own() -> None:
    assert all(key.startswith("mbd_") for key in misbehaviour.THRESHOLDS)
    merged = {**thresholds.COMMON, **misbehaviour.THRESHOLDS}
    for name, spec in registered().items():
        for key in spec.thresholds:
            assert key.startswith(f"{name}_") or key in SHARED_THRESHOLDS, key
        assert not set(merged) & set(spec.thresholds)
        merged.update(spec.thresholds)
    assert merged == dict(thresholds.DEFAULTS)


def test_messages_and_factories_match_where_an_app_runs() -> None:
    for spec in registered().values():
        assert spec.consumes and set(spec.consumes) <= set(registry.MESSAGES)
        assert (spec.onboard is not None) == (spec.runs_on is RunsOn.VEHICLE)
        assert (spec.edge is not None) == (spec.runs_on is RunsOn.EDGE)


def test_on_board_apps_run_in_the_documented_order_one_object_per_family() -> None:
    apps = onboard_apps(reversed(app_names()))  # the order asked in does not matter
    assert [type(a).__name__ for a in apps] == [
        "ForwardCollisionWarning",
        "CloseFollowingWarning",  # cfw (declared after icw, an edge app)
        "VulnerableRoadUserCollisionWarning",
        "HazardousLocationWarning",
        "InVehicleSignage",
        "SpeedLimitWarningApp",
        "VehicleEventWarnings",  # ebw, avw, clw, evw
        "RedLightViolationWarning",
        "GreenLightSpeedAdvisory",
        "LeftTurnAssist",
        "BlindSpotWarnings",  # bsw, lcw
        "DoNotPassWarning",
        "SensorDataSharingWarning",
        "TrafficJamWarning",
        "SignalPriority",
        "CooperativeLaneChange",  # clc
        "PlatoonAdvisories",
    ]
    assert onboard_apps(["icw"]) == []  # an edge app does not run on board


def test_the_schema_names_the_registered_apps(tmp_path: Path) -> None:
    text = (SCENARIO_DIR / "fcw.yaml").read_text().replace("apps: [fcw]", "apps: [fcx]", 1)
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    [(loc, msg)] = err.value.problems
    assert loc == "actors[1].apps[0]" and "'fcx'" in msg
    assert all(name in msg for name in app_names())


# -- a package's own application, registered through an entry point ------------------------------------


class TrafficJamWarning:
    """A toy TJW: a vehicle ahead in the host's lane, crawling, within range."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        out = []
        for remote in view.remotes.values():
            where = placement(view.host, remote, t_s)
            if (
                0 < where.gap_m <= view.thresholds["tjw_max_distance_m"]
                and abs(where.lateral_m) <= 1.75
                and remote.speed_mps <= view.thresholds["tjw_max_speed_mps"]
            ):
                out.append(Raised("tjw", remote.key, figure=where.gap_m, conflict_type="queue ahead"))
        return out


TJW = AppSpec(
    name="tjw",
    code=testbed_pb2.APP_TJW,
    title="traffic jam warning",
    runs_on=RunsOn.VEHICLE,
    consumes=("bsm",),
    colour="#000000",
    figure=Figure("queue_m", "to the queue", "m"),
    thresholds={"tjw_max_distance_m": 150.0, "tjw_max_speed_mps": 2.0},
    onboard=lambda names: TrafficJamWarning(),
)


class _EntryPoint:
    name = "tjw"
    value = "tests.test_app_registry:TJW"

    def load(self) -> object:
        return [TJW]


@pytest.fixture
def with_tjw(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # TJW is built in (v2x/apps/tjw.py); here a package brings its own instead, as if it were not.
    monkeypatch.setattr(registry, "BUILTIN_MODULES", tuple(m for m in registry.BUILTIN_MODULES if m != "v2x.apps.tjw"))
    monkeypatch.setattr(registry, "plugin_entry_points", lambda: [_EntryPoint()])
    registry.refresh()
    monkeypatch.setattr(thresholds, "DEFAULTS", thresholds._merged())
    yield
    registry.refresh()


@pytest.mark.usefixtures("with_tjw")
def test_an_app_registered_by_an_entry_point_runs_on_board_and_the_driver_reacts(tmp_path: Path) -> None:
    assert app_names()[-1] == "tjw" and thresholds.DEFAULTS["tjw_max_speed_mps"] == 2.0
    path = tmp_path / "tjw.yaml"
    text = (SCENARIO_DIR / "fcw.yaml").read_text().replace("apps: [fcw]", "apps: [tjw]", 1)
    path.write_text(text.replace("app: fcw, target: follower", "app: tjw, target: follower"))  # (about its app)
    sc = load_scenario(path)
    cars = {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}
    inbox: dict[str, list[Heard]] = {k: [] for k in cars}
    raised: list[testbed_pb2.Advisory] = []
    for tick in range(100):
        t = round(tick * 0.1, 9)
        outputs = {name: car.step(tick_ctx(tick, tuple(inbox[name]))) for name, car in cars.items()}
        raised += outputs["follower"].events
        inbox = {k: [] for k in cars}
        for sender, res in outputs.items():  # ideal channel: every BSM heard next tick
            for tx in res.transmissions:
                for receiver in cars:
                    if receiver != sender and tx.link == testbed_pb2.LINK_PC5:
                        inbox[receiver].append(Heard(sender, tx.link, t + 0.002, t, tx.frame))
    first = raised[0]
    assert first.app == testbed_pb2.APP_TJW and first.figure_name == "queue_m" and first.conflict_type == "queue ahead"
    follower = cars["follower"]
    assert follower.driver is not None and follower.driver.cause == "tjw"
    assert follower.driver.brake_at_s == pytest.approx(first.raised_at_s + 1.0)
