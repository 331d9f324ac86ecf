"""What an install outside a checkout gets (the wheel), and static checks of docker/ (no Docker engine
runs here; see docker/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests._mosquitto import DOCKER_DIR, mosquitto_conf
from v2x.run.docs import documents
from v2x.scenario import catalogue

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in catalogue())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [whl] = out.glob("v2x_testbed-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_generated_code_and_scenarios_and_finds_them_when_installed(wheel: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("common", "day1", "frame", "testbed"):
        assert f"v2x/wire/{module}_pb2.py" in names
    assert sorted(Path(n).stem for n in names if n.startswith("v2x/_scenarios/") and n.endswith(".yaml")) == SHIPPED
    # ... with their golden records (v2x check)
    assert sorted(Path(n).stem for n in names if n.startswith("v2x/_scenarios/golden/")) == SHIPPED
    # Unpacked on its own (as site-packages would hold it), the package lists and loads its scenarios.
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import v2x, sys; from v2x.scenario import catalogue, load_scenario; "
        "assert v2x.__file__.startswith(sys.argv[1]), v2x.__file__; "
        "print(' '.join(load_scenario(p).id for p in catalogue()))"
    )
    env_path = f"{tmp_path}"
    done = subprocess.run(
        [sys.executable, "-c", code, env_path],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert sorted(done.stdout.split()) == SHIPPED


def test_dockerfile_copies_what_exists_and_runs_the_catalogue() -> None:
    text = (DOCKER_DIR / "Dockerfile").read_text()
    copied = [
        src
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    ]
    assert copied, "no COPY lines"
    for src in copied:
        assert (ROOT / src).exists(), src
    cmd = re.search(r"^CMD \[(.*)\]$", text, re.MULTILINE)
    assert cmd is not None
    args = [a.strip().strip('"') for a in cmd.group(1).split(",")]
    assert args[:2] == ["run", "--all"]  # the whole catalogue, whatever it holds
    assert '"v2x-testbed[sumo]"' in text  # ... sumo-corridor among it, which needs SUMO


def test_compose_builds_from_the_repository_and_names_real_brokers() -> None:
    doc = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())
    services = doc["services"]
    assert {"mosquitto", "emqx", "testbed"} <= set(services)
    build = services["testbed"]["build"]
    assert (DOCKER_DIR / build["context"] / build["dockerfile"]).resolve() == (DOCKER_DIR / "Dockerfile").resolve()
    assert "mqtt://mosquitto:1883" in " ".join(services["testbed"]["command"])
    assert services["mosquitto"]["volumes"][0].startswith("./mosquitto.conf:")


def test_the_shipped_mosquitto_settings_are_the_tests_settings() -> None:
    conf = mosquitto_conf(41234)
    assert "listener 41234 127.0.0.1\n" in conf and "set_tcp_nodelay true" in conf


def _requirement_names(specs: list[str]) -> set[str]:
    names = set()
    for spec in specs:
        name = re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]
        if name and name != "v2x-testbed":
            names.add(_canonical(name))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_build_requirement_and_extra_is_pinned_in_constraints() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named = _requirement_names(project["build-system"]["requires"])
    named |= _requirement_names(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        named |= _requirement_names(extra)
    pins: dict[str, str] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[_canonical(name)] = version
    assert named - set(pins) == set(), "named in pyproject.toml but not pinned in constraints.txt"
    # The runtime figures that outcomes depend on (random streams, compiled kernels) are among the pins.
    assert {"numpy", "numba", "llvmlite", "protobuf"} <= set(pins)


def test_every_install_path_uses_the_constraints() -> None:
    setup = (ROOT / "scripts" / "_setup.sh").read_text()
    assert 'PIP_CONSTRAINT="$PWD/constraints.txt"' in setup
    for script in ("check", "demo"):
        assert "setup_venv" in (ROOT / "scripts" / script).read_text(), script
    docker = (DOCKER_DIR / "Dockerfile").read_text()
    assert "ENV PIP_CONSTRAINT=/src/constraints.txt" in docker and "-c /tmp/constraints.txt" in docker


def test_the_docs_travel_with_the_wheel_and_v2x_docs_prints_them(
    wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped_docs = sorted(Path(n).name for n in names if n.startswith("v2x/_docs/"))
    # docs/*.md, and the README's two documents from outside docs/ as NAME.md
    assert shipped_docs == sorted([p.name for p in (ROOT / "docs").glob("*.md")] + ["CHANGELOG.md", "SEEDS.md"])
    from v2x.cli import main

    assert main(["docs", "scenarios"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "SCENARIOS.md").read_text()
    assert main(["docs", "nosuch"]) == 2
    # Installed (the wheel unpacked on its own, no checkout around it), `v2x docs` finds all of them too.
    zipfile.ZipFile(wheel).extractall(tmp_path)
    for name, source in (("seeds", ROOT / "seeds" / "README.md"), ("changelog", ROOT / "CHANGELOG.md")):
        done = subprocess.run(
            [sys.executable, "-m", "v2x", "docs", name],
            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        assert done.stdout == source.read_text(), name


def test_v2x_docs_offers_the_readmes_documents_from_outside_docs(capsys: pytest.CaptureFixture[str]) -> None:
    from v2x.cli import main

    assert main(["docs"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {p.stem.lower() for p in (ROOT / "docs").glob("*.md")} | {"changelog", "seeds"} == set(listed)
    assert listed["seeds"].endswith(f"({ROOT / 'seeds' / 'README.md'})")
    for name, path in (("changelog", ROOT / "CHANGELOG.md"), ("seeds", ROOT / "seeds" / "README.md")):
        assert main(["docs", name]) == 0
        assert capsys.readouterr().out == path.read_text(), name
    # ... and the README names no document that `v2x docs` cannot print
    section = (ROOT / "README.md").read_text().split("## Documents", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\b((?:docs/[A-Z]+|seeds/README|CHANGELOG)\.md)\b", section))
    assert named, "no documents named in the README's Documents section"
    by_path = {str(p.relative_to(ROOT)) for p in documents().values()}
    assert named <= by_path, named - by_path
