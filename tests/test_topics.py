from collections.abc import Callable

import pytest

from v2x.net import topics


def test_topics_carry_the_run_id_and_parse_back() -> None:
    t = topics.tx("run-1", "car_a")
    assert t == "v2x/run-1/tx/car_a"
    parsed = topics.parse(t)
    assert parsed == topics.ParsedTopic("run-1", "tx", "car_a")
    assert topics.all_of("run-1", "ack") == "v2x/run-1/ack/+"
    assert topics.control("r") == "v2x/r/control"


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "", "x" * 65, "sp ace"])
def test_ids_with_wildcards_or_separators_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid actor id"):
        topics.tx("run", bad)


@pytest.mark.parametrize("topic", ["v2x/r/tx", "v2x/r/nope/a", "other/r/tx/a", "v2x/r/tx/a/b", "v2x/r/tx/+"])
def test_foreign_topics_do_not_parse(topic: str) -> None:
    assert topics.parse(topic) is None


def test_transport_dispatch_exact_and_wildcard_routes_in_registration_order() -> None:
    """Exact topics are looked up, wildcard filters matched; every matching handler runs once, in the
    order the routes were added; a failing handler does not stop the others."""
    import aiomqtt

    from v2x.net.broker import BrokerAddress
    from v2x.net.transport import Transport

    tp = Transport(BrokerAddress("127.0.0.1", 1), "t")
    calls: list[str] = []

    def record(name: str) -> Callable[[str, bytes], None]:
        def handler(topic: str, payload: bytes) -> None:
            calls.append(f"{name}:{topic}:{payload.decode()}")
            if name == "boom":
                raise RuntimeError("handler bug")

        return handler

    tp.route("v2x/r/+/a", record("wild1"))
    tp.route("v2x/r/in/a", record("exact"))
    tp.route("v2x/r/#", record("boom"))
    tp.route("v2x/r/in/b", record("other"))
    tp._dispatch("v2x/r/in/a", aiomqtt.Message("v2x/r/in/a", b"x", 0, False, 1, None))
    assert calls == ["wild1:v2x/r/in/a:x", "exact:v2x/r/in/a:x", "boom:v2x/r/in/a:x"]
    calls.clear()
    tp._dispatch("v2x/r/in/b", aiomqtt.Message("v2x/r/in/b", b"y", 0, False, 2, None))
    assert calls == ["boom:v2x/r/in/b:y", "other:v2x/r/in/b:y"]
    calls.clear()
    tp._dispatch("v2x/s/in/a", aiomqtt.Message("v2x/s/in/a", b"z", 0, False, 3, None))
    assert calls == []
