from pathlib import Path

import pytest

from v2x.net import topics


def test_topics_carry_the_run_id_and_parse_back() -> None:
    t = topics.tx("run-1", "car_a")
    assert t == "v2x/run-1/tx/car_a"
    parsed = topics.parse(t)
    assert parsed == topics.ParsedTopic("run-1", "tx", "car_a")
    assert topics.all_of("run-1", "ack") == "v2x/run-1/ack/+"
    assert topics.control("r") == "v2x/r/control"


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "", "x" * 65, "sp ace", "x\n", "x\r\n"])
def test_ids_with_wildcards_or_separators_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid actor id"):
        topics.tx("run", bad)


@pytest.mark.parametrize("topic", ["v2x/r/tx", "v2x/r/nope/a", "other/r/tx/a", "v2x/r/tx/a/b", "v2x/r/tx/+"])
def test_foreign_topics_do_not_parse(topic: str) -> None:
    assert topics.parse(topic) is None


def test_a_run_id_ending_in_a_newline_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`--run-id $'x\\n'` passed the id check (a regex's "$" matches before a final newline), then gave a
    traceback (attack review, session 19)."""
    from v2x.cli import main

    assert main(["run", "fcw", "--run-id", "x\n"]) == 2
    err = capsys.readouterr().err
    assert "--run-id 'x\\n': use 1-55 characters" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("topic_or_filter", "kind"),
    [
        ("v2x/r/tx/car_a", "tx"),
        ("v2x/r/fleet-ack/fleet-0", "fleet-ack"),
        ("v2x/r/in/+", "in"),  # a subscription filter: the ids are not checked
        ("v2x/+/join/+", "join"),
        ("v2x/r/control", "control"),
        ("v2x-probe/r/nonce", "probe"),
        ("v2x-probe/r/+", "probe"),
        ("v2x/r/+/a", None),  # a wildcard for the kind: could be any of them
        ("v2x/r/#", None),
        ("v2x/r/nope/a", None),
        ("v2x/r/tx/a/b", None),
        ("v2x/r", None),
        ("other/r/tx/a", None),
        ("#", None),
    ],
)
def test_kind_of_names_the_topic_a_topic_or_filter_is(topic_or_filter: str, kind: str | None) -> None:
    """``kind_of`` (the payload limits per topic, ``v2x.net.limits``) agrees with ``parse`` on every actor
    topic, and also reads filters, the control topic and the world's probe."""
    assert topics.kind_of(topic_or_filter) == kind
    parsed = topics.parse(topic_or_filter)
    assert parsed is None or parsed.kind == kind


def test_a_drawn_run_id_fits_the_topics_for_the_longest_scenario_id_and_seed() -> None:
    """Fuzz review 25: a scenario id may be 64 characters long, and a seed had no bound, but the run id drawn
    for a run (`{id}-{variant}-s{seed}-{hex}`) must be at most 64: a traceback after the broker started."""
    from v2x.argtypes import SEED_LIMIT, random_run_id

    for scenario_id in ("fcw", "a" * 27, "a" * 28, "a" * 64):
        for seed in (0, SEED_LIMIT - 1):
            run_id = random_run_id(scenario_id, "baseline", seed, "abcdef")
            assert topics.valid_id(run_id) and run_id.endswith(f"-baseline-s{seed}-abcdef"), run_id
            assert run_id.startswith(scenario_id[:27])
    assert random_run_id("fcw", "v2x", 7, "abcdef") == "fcw-v2x-s7-abcdef"  # (short ids as they were)


async def test_a_scenario_of_the_longest_id_runs_with_the_largest_seed(tmp_path: Path) -> None:
    from v2x.argtypes import SEED_LIMIT
    from v2x.run.runner import run_scenario
    from v2x.scenario import find_scenario, load_scenario

    text = find_scenario("fcw").read_text().replace("id: fcw\n", f"id: {'a' * 64}\n", 1)
    (path := tmp_path / "long.yaml").write_text(text)
    result = await run_scenario(load_scenario(path), broker="loopback", variants=["baseline"], seed=SEED_LIMIT - 1)
    assert result["scenario"] == "a" * 64 and result["run"]["run_ids"]["baseline"].startswith("a" * 27)
