"""The live view (v2x run --view) in headless Chromium: the page loads from the run's own server (nothing
fetched elsewhere), shows the vehicles of a real fcw run, the FCW warning reaches the follower, and pause
and step move the clock one tick at a time. Skipped when Chromium, its driver or selenium is missing."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from v2x.run.runner import run_scenario
from v2x.run.view import ViewServer
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="v2x-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "state", timeout=5) as r:
        doc: dict[str, Any] = json.loads(r.read())
        return doc


def _wait(cond: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


@contextlib.contextmanager
def _held_at_tick_0(sc: Any, variant: str = "v2x", result: dict[str, Any] | None = None) -> Iterator[ViewServer]:
    """A live view of ``sc``'s ``variant`` on the loopback bus, held after tick 0 (``--paused``): the server,
    once tick 0 is on it; the run goes on to its end when the block is left (its result document then in
    ``result``, if given)."""
    server = ViewServer(port=0, paused=True).start()

    def run() -> None:
        done = asyncio.run(
            run_scenario(sc, seed=0, broker="loopback", variants=[variant], observe=lambda v, r: server.observer(sc, v))
        )
        if result is not None:
            result.update(done)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        _wait(lambda: (_state(server.url).get("tick") or {}).get("tick") == 0)
        yield server
    finally:
        server.hub.control("resume")
        runner.join(60)
        server.stop()


def test_the_live_view_shows_a_real_fcw_run(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    server = ViewServer(port=0, paused=True).start()
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(
            asyncio.run(
                run_scenario(
                    sc, seed=0, broker="loopback", variants=["v2x"], observe=lambda v, r: server.observer(sc, v)
                )
            )
        )

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        _wait(lambda: (_state(server.url).get("tick") or {}).get("tick") == 0)
        browser.get(server.url)
        clock = browser.find_element(By.ID, "clock")
        _wait(lambda: clock.text == "t = 0.0 s")
        for actor in ("lead", "follower", "neighbour"):
            assert browser.find_element(By.ID, f"actor-{actor}").tag_name == "g"
        assert browser.find_element(By.ID, "lane-eb1") and browser.find_element(By.ID, "rsu-rsu1")
        assert "paused" in browser.find_element(By.ID, "status").text
        # step: one tick at a time
        browser.find_element(By.ID, "step").click()
        _wait(lambda: clock.text == "t = 0.1 s")
        browser.find_element(By.ID, "step").click()
        _wait(lambda: clock.text == "t = 0.2 s")
        time.sleep(0.3)
        assert clock.text == "t = 0.2 s" and _state(server.url)["tick"]["tick"] == 2  # held
        # run on: the lead brakes at 6 s, the follower is warned (FCW) and flashes
        browser.find_element(By.ID, "resume").click()
        follower = browser.find_element(By.ID, "actor-follower")
        _wait(lambda: "fcw" in (follower.get_attribute("data-warnings") or ""))
        assert "fcw" not in (browser.find_element(By.ID, "actor-neighbour").get_attribute("data-warnings") or "")
        assert "FCW to follower about lead" in browser.find_element(By.ID, "log").text
        assert browser.find_elements(By.CSS_SELECTOR, "#rates tr#rate-bsm")
        runner.join(30)
        _wait(lambda: "run finished" in browser.find_element(By.ID, "status").text)
        # the controls are off once the run has finished (a click failed with "Failed to fetch": newcomer 7)
        for button in ("pause", "resume", "step"):
            assert not browser.find_element(By.ID, button).is_enabled()
        # nothing but the run's own server was asked for anything
        hosts = browser.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).host)")
        assert set(hosts) <= {server.url.split("/")[2]}
    finally:
        server.hub.control("resume")
        runner.join(30)
        server.stop()
    assert result["passed"]


def test_controls_need_the_pages_token_and_every_request_this_servers_host() -> None:
    """A bare POST /control/pause from anyone (another site's page in the browser included: a no-cors POST
    needs no permission) held a run as long as it liked (an attack review). A control needs the token the
    served page carries; a request naming another Host (DNS rebinding) gets nothing."""
    import http.client
    import re

    server = ViewServer(port=0).start()
    port = server.httpd.server_address[1]

    def ask(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, body

    try:
        status, page = ask("GET", "/", {})
        token = re.search(rb'const TOKEN = "([0-9a-f]{32})"', page)
        assert status == 200 and token
        assert ask("POST", "/control/pause", {})[0] == 403 and not server.hub.paused
        assert ask("POST", "/control/pause", {"X-V2X-Token": "0" * 32})[0] == 403 and not server.hub.paused
        rebound = {"Host": f"evil.example:{port}", "X-V2X-Token": token[1].decode()}
        assert ask("POST", "/control/pause", rebound)[0] == 403 and not server.hub.paused
        assert ask("GET", "/", {"Host": f"evil.example:{port}"})[0] == 403
        assert ask("POST", "/control/pause", {"X-V2X-Token": token[1].decode()})[0] == 200 and server.hub.paused
        assert ask("POST", "/control/resume", {"Host": f"localhost:{port}", "X-V2X-Token": token[1].decode()})[0] == 200
        assert not server.hub.paused
    finally:
        server.stop()


def test_the_view_served_to_other_machines_takes_this_machines_names_only(capsys: pytest.CaptureFixture[str]) -> None:
    """``--host 0.0.0.0`` (a newcomer review: the view was on 127.0.0.1 only, no use on a lab machine): a
    request naming this machine (its name, an address of it) is served, one naming another site (DNS
    rebinding) is still refused; the URL names the machine; --host without --view, or an address that is not
    this machine's, exits 2."""
    import http.client
    import socket

    from v2x.cli import main

    server = ViewServer(host="0.0.0.0", port=0).start()
    port = server.port

    def status(host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/state", headers={"Host": host})
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status

    try:
        assert server.url == f"http://{socket.gethostname()}:{port}/" and not server.loopback
        assert status(f"{socket.gethostname()}:{port}") == 200
        assert status(f"{socket.gethostname().upper()}:{port}") == 200  # (names are not case-sensitive)
        assert status(f"127.0.0.1:{port}") == 200
        assert status(f"evil.example:{port}") == 403
        assert status(f"{socket.gethostname()}:{port + 1}") == 403
    finally:
        server.stop()
    assert ViewServer(port=0).loopback
    assert main(["run", "fcw", "--host", "0.0.0.0"]) == 2
    assert "--port, --host and --paused go with --view" in capsys.readouterr().err
    assert main(["run", "fcw", "--view", "--host", "192.0.2.1", "--port", "0"]) == 2  # (TEST-NET-1: not ours)
    assert "v2x run: --view: cannot serve on 192.0.2.1 port 0" in capsys.readouterr().err


def test_a_real_time_run_cannot_be_held_at_tick_0(capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer review paused a real-time run in the view for 4 s: every tick after it was late and the
    passing run failed. Pause and Step are refused for a real-time run (409), Run still answers, and
    `--paused` with `--mode realtime` exits 2 before anything runs."""
    import http.client
    import re

    from v2x.cli import main

    assert main(["run", "fcw", "--view", "--paused", "--mode", "realtime"]) == 2
    assert "--paused: a real-time run cannot be held" in capsys.readouterr().err
    server = ViewServer(port=0, holdable=False).start()
    port = server.httpd.server_address[1]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        token = re.search(rb'const TOKEN = "([0-9a-f]{32})"', conn.getresponse().read())
        assert token
        for command, status in (("pause", 409), ("step", 409), ("resume", 200)):
            conn.request("POST", f"/control/{command}", headers={"X-V2X-Token": token[1].decode()})
            r = conn.getresponse()
            assert (r.status, r.read().startswith(b"a real-time run") or status == 200) == (status, True), command
        assert not server.hub.paused and server.hub.may_proceed()
        conn.close()
    finally:
        server.stop()
    with pytest.raises(ValueError, match="cannot be held"):
        ViewServer(port=0, paused=True, holdable=False)


def test_the_view_draws_the_background_traffic(browser: Any) -> None:
    """A newcomer review's view showed empty roads with 33 background cars on them: the page now draws each
    background vehicle (flows or SUMO) as a box under the scenario's road users, as many as are on the road."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "breakdown.yaml")
    sc = sc.model_copy(update={"duration_s": 3.0})
    with _held_at_tick_0(sc) as server:
        boxes = _state(server.url)["tick"]["background"]
        assert boxes and all(len(b) == 5 and b[3] > 2.0 for b in boxes)  # [x, y, yaw, length, width]
        browser.get(server.url)
        _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#background rect")) == len(boxes))


def test_an_actor_named_like_an_object_property_is_drawn(browser: Any, tmp_path: Path) -> None:
    """An actor named `constructor` stopped the page drawing anything (its per-actor tables were plain objects:
    attack review 4)."""
    from selenium.webdriver.common.by import By

    path = tmp_path / "fcw.yaml"
    path.write_text((SCENARIO_DIR / "fcw.yaml").read_text().replace("neighbour", "constructor"))
    sc = load_scenario(path)
    with _held_at_tick_0(sc) as server:
        browser.get(server.url)
        _wait(lambda: len(browser.find_elements(By.ID, "actor-constructor")) == 1)
        assert browser.find_element(By.ID, "actor-follower") and browser.find_element(By.ID, "actor-lead")


def test_the_view_shows_each_signal_heads_light(browser: Any) -> None:
    """The live view showed no signal states though SPAT went by at 10/s (a newcomer review): each signalised
    stop line now has a light in the colour the referee sees, changing with the plan."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "rlvw.yaml")
    with _held_at_tick_0(sc) as server:
        signals = _state(server.url)["tick"]["signals"]
        assert signals and {s[2] for s in signals} <= {"red", "yellow", "protected-green"}
        browser.get(server.url)
        _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#signals circle")) == len(signals))
        shown = [c.get_attribute("class") for c in browser.find_elements(By.CSS_SELECTOR, "#signals circle")]
        assert shown == [s[2] for s in signals]
        server.hub.control("resume")
        seen: set[str] = set()

        def changed() -> bool:  # (the plan turns another light on during the run)
            seen.update(s[2] for s in _state(server.url)["tick"]["signals"])
            return len(seen) >= 2

        _wait(changed, 60)


@pytest.mark.parametrize(("name", "what"), [("hlw", ".road-event circle"), ("gnss", ".zone"), ("sds", ".obstacle")])
def test_the_view_draws_road_events_zones_and_obstacles(browser: Any, name: str, what: str) -> None:
    """The live view drew lanes, intersections and RSUs only (session 19's note): a road event's hazard zone,
    a positioning zone (tunnel) and an obstacle that hides a pedestrian were on the report's map but not here.
    The page now draws the report's picture (``scenario_map``): each one where the scenario puts it."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    sc = sc.model_copy(update={"duration_s": 1.0})
    with _held_at_tick_0(sc) as server:
        scene = _state(server.url)["scene"]
        expected = {
            ".road-event circle": [i for i in scene["rsi"] if i["kind"] == "event" and i["radius_m"]],
            ".zone": scene["zones"],
            ".obstacle": scene["obstacles"],
        }[what]
        assert expected  # (the scenario has some: the test would pass on an empty page otherwise)
        browser.get(server.url)
        _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, f"#static {what}")) == len(expected))
        if what == ".road-event circle":
            drawn = browser.find_elements(By.CSS_SELECTOR, f"#static {what}")
            assert [float(c.get_attribute("r")) for c in drawn] == [float(i["radius_m"]) for i in expected]


def test_the_v2x_variants_warnings_stay_on_the_page_after_the_baseline_starts(browser: Any) -> None:
    """A newcomer review pressed Run in a lockstep run: the v2x variant was over in about 3 s, the page switched
    to the baseline and emptied the warnings list, so the v2x warnings were never seen. Each variant now keeps
    its own list: the v2x one stays (marked finished) under the baseline's, and a page opened later shows it."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    assert sc.variants == ["v2x", "baseline"]
    server = ViewServer(port=0, paused=True).start()

    def run() -> None:
        asyncio.run(run_scenario(sc, seed=0, broker="loopback", observe=lambda v, r: server.observer(sc, v)))

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        _wait(lambda: (_state(server.url).get("tick") or {}).get("tick") == 0)
        browser.get(server.url)
        _wait(lambda: browser.find_element(By.ID, "clock").text == "t = 0.0 s")
        assert browser.find_element(By.ID, "log-v2x").get_attribute("data-state") == "running"
        browser.find_element(By.ID, "resume").click()  # the v2x variant runs to its end
        # --paused holds each variant after its tick 0: the baseline too (newcomer 5), then Run again
        _wait(lambda: (_state(server.url).get("scene") or {}).get("variant") == "baseline")
        _wait(lambda: (_state(server.url).get("tick") or {}).get("tick") == 0 and _state(server.url)["paused"])
        browser.find_element(By.ID, "resume").click()
        runner.join(60)
        title = browser.find_element(By.ID, "title")
        _wait(lambda: title.text == "fcw [baseline]" and "(final)" in browser.find_element(By.ID, "tick").text)
        v2x_log = browser.find_element(By.ID, "log-v2x")
        assert v2x_log.get_attribute("data-state") == "finished"
        assert "FCW to follower about lead" in v2x_log.text and v2x_log.get_attribute("open") is not None
        assert "v2x (finished): " in v2x_log.find_element(By.TAG_NAME, "summary").text
        baseline_log = browser.find_element(By.ID, "log-baseline")
        assert "FCW" not in baseline_log.text  # (the baseline has no V2X: no warning of its own)
        # its collision is listed (the boxes only turned black: a newcomer review), not counted as a warning
        assert "COLLISION follower - lead at 16.7 m/s" in baseline_log.text
        assert "baseline (finished): 0 warnings" in baseline_log.find_element(By.TAG_NAME, "summary").text
        # the current variant's list on top, the earlier one kept below it
        order = [d.get_attribute("id") for d in browser.find_elements(By.CSS_SELECTOR, "#log > details")]
        assert order == ["log-baseline", "log-v2x"]
        # the server keeps them too: /state, and a page opened after the v2x variant ran
        state = _state(server.url)
        assert list(state["warnings"]) == ["v2x", "baseline"] and state["warnings"]["baseline"] == []
        assert any(w["app"] == "fcw" and w["target"] == "follower" for w in state["warnings"]["v2x"])
        browser.get(server.url)
        _wait(lambda: browser.find_element(By.ID, "title").text == "fcw [baseline]")
        _wait(lambda: "FCW to follower about lead" in browser.find_element(By.ID, "log-v2x").text)
    finally:
        server.hub.control("resume")
        runner.join(60)
        server.stop()


def test_a_client_that_resets_or_idles_or_floods_costs_the_run_nothing(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attack review: clients that reset their connection after a request printed Python tracebacks on the
    run's stderr (33 for 40), and idle connections held a server thread each for good."""
    import socket
    import struct

    from v2x.run import view

    monkeypatch.setattr(view._Handler, "timeout", 0.5)
    monkeypatch.setattr(view, "MAX_STREAMS", 1)
    server = ViewServer(port=0).start()
    host, port = server.httpd.server_address[:2]
    try:
        for _ in range(20):  # a request, then a reset before the answer is read
            s = socket.create_connection((str(host), port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(f"GET /state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.close()
        idle = socket.create_connection((str(host), port))
        idle.settimeout(5.0)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server
        assert time.monotonic() - started < 3.0
        idle.close()
        first = socket.create_connection((str(host), port))
        first.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        first.settimeout(5.0)
        assert first.recv(64).startswith(b"HTTP/1.0 200")
        # one stream more than MAX_STREAMS ends the oldest (it was refused, 503, while someone else held them
        # all: attack review 7), at once, though the stream had nothing to send for 15 s
        started = time.monotonic()
        with urllib.request.urlopen(f"{server.url}events", timeout=5) as second:
            assert second.status == 200
            while first.recv(4096):
                pass
            assert time.monotonic() - started < 3.0
        first.close()
        time.sleep(0.5)
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_a_request_that_trickles_in_is_closed_and_connections_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack review 2: a client sending its request a byte every few seconds was never closed (the timeout
    bounded each read, not the request), a thread per connection and no cap: 276 threads after 45 s."""
    import socket

    from v2x.run import view

    monkeypatch.setattr(view, "REQUEST_TIMEOUT_S", 1.0)
    monkeypatch.setattr(view, "MAX_CONNECTIONS", 4)
    server = ViewServer(port=0).start()
    host, port = server.httpd.server_address[:2]
    try:
        slow = socket.create_connection((str(host), port))
        started = time.monotonic()
        closed = False
        for ch in b"GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\n":
            try:
                slow.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > 4.0:
                break
        if not closed:
            slow.settimeout(3.0)
            assert slow.recv(64) == b""
        assert time.monotonic() - started < 4.0  # closed about 1 s in, the request not yet whole
        slow.close()
        idle = [socket.create_connection((str(host), port)) for _ in range(4)]
        time.sleep(0.2)
        # one more: the oldest idle connection is closed at once to make room (the newcomer was, and a page
        # load could be kept out by idle connections re-opened as they were closed: attack review 7)
        with urllib.request.urlopen(f"{server.url}state", timeout=5) as answer:
            assert answer.status == 200
        idle[0].settimeout(3.0)
        assert idle[0].recv(1) == b""
        for s in idle:
            s.close()
        time.sleep(1.5)  # the idle ones' slots come back with their deadline
        # all taken by connections that sent their request (event streams): one more is closed at once
        monkeypatch.setattr(view, "MAX_STREAMS", 4)
        streams = [socket.create_connection((str(host), port)) for _ in range(4)]
        for s in streams:
            s.sendall(f"GET /events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.settimeout(3.0)
            assert s.recv(64).startswith(b"HTTP/1.0 200")
        extra = socket.create_connection((str(host), port))
        extra.settimeout(3.0)
        t0 = time.monotonic()
        assert extra.recv(1) == b"" and time.monotonic() - t0 < 0.9  # closed at once: no room
        for s in (*streams, extra):
            s.close()
    finally:
        server.stop()


def test_the_page_is_served_while_others_hold_every_stream_and_idle_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack review 7: 32 event streams held and 40 threads re-opening idle connections (closed after 10 s)
    kept every connection slot taken: the user's `GET /` was closed unanswered, 19 times of 19. A newcomer now
    closes the oldest idle connection, and a new page's stream ends the oldest stream."""
    import socket

    from v2x.run import view

    monkeypatch.setattr(view, "MAX_CONNECTIONS", 6)
    monkeypatch.setattr(view, "MAX_STREAMS", 3)
    server = ViewServer(port=0).start()
    host, port = server.httpd.server_address[:2]
    held: list[socket.socket] = []
    try:
        for _ in range(3):  # every stream
            s = socket.create_connection((str(host), port))
            s.sendall(f"GET /events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.settimeout(3.0)
            assert s.recv(64).startswith(b"HTTP/1.0 200")
            held.append(s)
        held += [socket.create_connection((str(host), port)) for _ in range(3)]  # every other connection
        time.sleep(0.2)
        for _ in range(3):  # each load closes one idle connection
            with urllib.request.urlopen(server.url, timeout=5) as page:
                assert page.status == 200 and b"const TOKEN" in page.read()
            held.append(socket.create_connection((str(host), port)))  # (re-opened, as the attack did)
            time.sleep(0.1)
        with urllib.request.urlopen(f"{server.url}events", timeout=5) as events:
            assert events.status == 200  # the page's stream: the oldest held one is ended
            held[0].settimeout(3.0)
            while held[0].recv(4096):
                pass
    finally:
        for s in held:
            s.close()
        server.stop()


def test_a_control_with_a_token_beyond_ascii_is_refused() -> None:
    """Attack review 7: an X-V2X-Token with characters beyond ASCII got the connection closed with no answer
    (hmac.compare_digest raises on such a str); it is a wrong token like any other: 403."""
    import http.client

    server = ViewServer(port=0).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.putrequest("POST", "/control/pause")
        conn.putheader("X-V2X-Token", "é".encode() * 16)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 403 and b"X-V2X-Token" in answer.read()
        conn.close()
        assert not server.hub.paused
    finally:
        server.stop()


def _step_until(server: ViewServer, done: Any, most: int = 200) -> dict[str, Any]:
    """Step the held run one tick at a time until ``done(state)``; the state then."""
    state = _state(server.url)
    for _ in range(most):
        if done(state):
            return state
        tick = state["tick"]["tick"]
        server.hub.control("step")
        _wait(functools.partial(lambda t: _state(server.url)["tick"]["tick"] == t + 1, tick))
        state = _state(server.url)
    raise AssertionError(f"not reached in {most} steps")


def _first_events(url: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` events of a new client of ``/events`` (name, document)."""
    out: list[tuple[str, dict[str, Any]]] = []
    with urllib.request.urlopen(url + "events", timeout=10) as r:
        name = ""
        while len(out) < n:
            line = r.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[len("data: ") :])))
    return out


def test_a_page_opened_on_a_warnings_tick_lists_it_once(browser: Any) -> None:
    """Newcomer review 5: a page opened while held on the tick a warning was raised listed it twice (the scene
    carried the warnings so far, that tick's too, and the tick sent after it carried them again): "4 warnings"
    for 2. The scene now carries what came before the first tick the client is sent."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    with _held_at_tick_0(sc, "v2x") as server:
        state = _step_until(server, lambda s: s["tick"]["warnings"])  # held on the tick of the first warning
        [(first, scene), (second, tick)] = _first_events(server.url, 2)
        assert (first, second) == ("scene", "tick")
        assert tick["tick"] == state["tick"]["tick"] and tick["warnings"]
        assert scene["warnings"] + tick["warnings"] == state["warnings"]["v2x"]
        browser.get(server.url)
        _wait(lambda: browser.find_element(By.ID, "tick").text == str(tick["tick"]))  # (the stream's, drawn)
        n = len(state["warnings"]["v2x"])
        summary = f"v2x (running): {n} warning{'' if n == 1 else 's'}"
        assert browser.find_element(By.CSS_SELECTOR, "#log-v2x summary").text == summary
        entries = browser.find_elements(By.CSS_SELECTOR, "#log-v2x div.w")
        assert len(entries) == n
        # it flashes, as on a page that was open when it came
        assert "warned" in (browser.find_element(By.ID, "actor-follower").get_attribute("class") or "")


def test_a_page_opened_after_a_collision_shows_it(browser: Any) -> None:
    """Newcomer review 5: a page opened after the baseline's crash showed the follower and the lead blue and
    no COLLISION line (the scene carried warnings but no collisions). The scene now carries the collisions
    so far, and /state lists them by variant."""
    from selenium.webdriver.common.by import By

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    with _held_at_tick_0(sc, "baseline") as server:
        state = _step_until(server, lambda s: s["collisions"]["baseline"])
        crash = state["tick"]["tick"]
        state = _step_until(server, lambda s: s["tick"]["tick"] == crash + 2)  # (not the latest tick any more)
        [(first, scene), (second, tick)] = _first_events(server.url, 2)
        assert (first, second) == ("scene", "tick")
        assert not tick["collisions"] and [c["actors"] for c in scene["collisions"]] == [["follower", "lead"]]
        assert scene["collisions"] == state["collisions"]["baseline"]
        browser.get(server.url)
        _wait(lambda: browser.find_element(By.ID, "tick").text == str(tick["tick"]))  # (the stream's, drawn)
        log = browser.find_element(By.ID, "log-baseline")
        assert "COLLISION follower - lead at 16.7 m/s" in log.text
        assert "baseline (running): 0 warnings" in log.find_element(By.TAG_NAME, "summary").text
        for actor in ("follower", "lead"):
            g = browser.find_element(By.ID, f"actor-{actor}")
            assert "collided" in (g.get_attribute("class") or "").split()
        assert "collided" not in (browser.find_element(By.ID, "actor-neighbour").get_attribute("class") or "")


def test_paused_holds_each_variant_after_its_tick_0() -> None:
    """Newcomer review 5: with --paused only the first variant was held; the user pressed Run to watch it, and the
    baseline (the crash) then ran unheld in under a second. Each variant now starts held; without --paused none."""
    from v2x.run.view import Hub

    hub = Hub(paused=True)
    hub.new_scene({"variant": "v2x"})
    assert not hub.may_proceed()
    hub.control("resume")
    assert hub.may_proceed()
    hub.new_scene({"variant": "v2x"})  # (the same variant's scene again: no new hold)
    assert hub.may_proceed()
    hub.new_scene({"variant": "baseline"})
    assert not hub.may_proceed() and hub.paused
    free = Hub(paused=False)
    free.new_scene({"variant": "v2x"})
    free.new_scene({"variant": "baseline"})
    assert free.may_proceed()


def test_time_held_by_a_paused_view_is_not_the_run_s_wall_time() -> None:
    """Newcomer review 6: ``--view --paused`` counted the time the user looked at a held tick 0 in the run's
    wall seconds (a 3 s run reported as minutes). The view's hold is left out of both wall times."""
    result: dict[str, Any] = {}
    started = time.monotonic()
    with _held_at_tick_0(load_scenario(SCENARIO_DIR / "fcw.yaml"), result=result):
        time.sleep(4.0)  # the user looks at tick 0
    elapsed = time.monotonic() - started
    assert elapsed > 4.0
    variant_wall = result["metrics"]["v2x"]["wall_seconds"]
    assert variant_wall < elapsed - 3.5, (variant_wall, elapsed)
    assert result["run"]["wall_seconds"] < elapsed - 3.5


def test_the_rates_at_the_first_tick_count_what_was_sent_not_a_rate_over_a_tenth_of_a_second() -> None:
    """A newcomer review: the live view showed "map 10" for the one MAP sent at t = 0 (a rate over the 0.1 s that had
    elapsed). It shows the messages sent in the last second: 1 MAP at tick 0."""
    with _held_at_tick_0(load_scenario(SCENARIO_DIR / "glosa.yaml")) as server:
        rates = _state(server.url)["tick"]["rates"]
    assert rates.get("map") == 1.0 and rates.get("spat") == 1.0, rates


def test_a_request_head_over_its_budget_is_answered_431_or_414_and_the_page_still_served() -> None:
    """Attack review 12: http.server takes up to 100 header lines of 64 KiB; 64 connections holding such heads
    took a run from 92 MB to 620 MB. The head now has a budget (MAX_REQUEST_HEAD_BYTES)."""
    import socket

    from v2x.run import view

    server = ViewServer(port=0).start()
    host, port = server.httpd.server_address[:2]

    def answer_to(request: bytes) -> bytes:
        big = socket.create_connection((str(host), port))
        big.settimeout(5.0)
        with contextlib.suppress(OSError):  # (the server may close before all of it is sent)
            big.sendall(request)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := big.recv(4096):
                answer += chunk
        big.close()
        return answer

    try:
        head = f"GET /state HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n".encode()
        filler = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        answer = answer_to(head + filler * (view.MAX_REQUEST_HEAD_BYTES // len(filler) + 2))
        assert answer.startswith(b"HTTP/1.0 431"), answer[:80]
        assert b"a request head over" in answer and b"65536" not in answer  # (LineTooLong's text named http.client's)
        # A request line over the budget was closed without a word (diff review 26).
        answer = answer_to(b"GET /" + b"a" * view.MAX_REQUEST_HEAD_BYTES + b" HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 414"), answer[:80]
        with urllib.request.urlopen(f"{server.url}state", timeout=5) as ok:  # a normal request is served
            assert ok.status == 200
    finally:
        server.stop()
