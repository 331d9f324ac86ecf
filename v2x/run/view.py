"""The live view of a run (``v2x run --view [--port P] [--paused]``): one small page served by the standard
library's HTTP server in a thread, updated over Server-Sent Events.

* ``GET /``: the page (``view.html`` next to this module; inline CSS and JS, nothing fetched elsewhere);
* ``GET /events``: the stream: a ``scene`` event when a variant starts (the report's map,
  ``v2x.run.tracks.scenario_map``, the variant's warnings and collisions before the first tick the client is sent, and
  those of the variants that ran before it) and a
  ``tick`` event per tick (the clock, every actor's pose, the tick's warnings, messages sent by type
  over the last simulated second, paused or not);
* ``GET /state``: the latest scene and tick, and every variant's warnings and collisions so far, as one JSON document;
* ``POST /control/pause``, ``/control/resume``, ``/control/step``: pause holds the world after the tick it
  has just closed (before the next one begins); step lets one more tick run. Meant for lockstep runs (a
  real-time run that is held falls behind its wall clock). A control needs the header ``X-V2X-Token`` with
  the server's random token, which only the page it serves carries: another site's page in the same browser
  cannot send it (a custom header makes its request one the browser first asks about, and nothing here says
  yes), where a bare POST from such a page held a run for as long as it liked (an attack review).

Every request must name this server as its ``Host`` (127.0.0.1, localhost or [::1] with its port; with
``--host ADDR`` also ADDR, and for 0.0.0.0 or :: this machine's name and addresses), so that a site whose name
is made to resolve to this machine (DNS rebinding) cannot read the page, its token or the stream. Served on
another address than the loopback, the page (and with it the controls' token) is open to whoever reaches it.

The observer (``ViewObserver.on_tick``) runs in the run's event loop and only hands copies of what it read
to the server thread; it never changes what the simulation does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import http.client
import io
import json
import logging
import secrets
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

from v2x.run.tap import Event, Tap, background_boxes, poses, signal_lights
from v2x.run.tracks import scenario_map
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation

MAX_FRAMES = 5000  # frames kept for clients that lag behind


def scene_of(scenario: Scenario, variant: str) -> dict[str, Any]:
    """The static part of the map, the same picture as the report's (``v2x.run.tracks.scenario_map``: lanes,
    intersections, obstacles, positioning zones, RSUs with their ranges, road events with their hazard zones
    and signs), with the scenario and variant it belongs to."""
    return {
        "scenario": scenario.id,
        "name": scenario.name,
        "variant": variant,
        "tick_s": scenario.tick_s,
        "duration_s": scenario.duration_s,
        **scenario_map(scenario),
    }


class Hub:
    """What the server thread shows and the controls the page sends, shared with the run's loop."""

    def __init__(self, *, paused: bool = False, holdable: bool = True) -> None:
        self.cond = threading.Condition()
        # whether the run may be held (lockstep); a real-time run that is held falls behind its wall clock and
        # every tick is then late: a newcomer review's passing run failed after a pause
        self.holdable = holdable
        self.scene: dict[str, Any] | None = None
        self.scene_no = 0
        self.frames: deque[tuple[int, dict[str, Any]]] = deque(maxlen=MAX_FRAMES)
        self.next_frame = 0
        self.scene_first_frame = 0  # the number of the current scene's first frame
        self.warnings: list[Event] = []  # the current variant's
        self.collisions: list[Event] = []  # the current variant's
        # the warnings of the variants that ran before it, by variant: the page keeps showing them (a lockstep
        # v2x variant was over in 3 s and the page switched to the baseline with an empty list: a newcomer review)
        self.earlier: dict[str, list[Event]] = {}
        self.earlier_collisions: dict[str, list[Event]] = {}
        self.paused = paused
        # --paused: every variant starts held after its tick 0 (only the first did: the baseline then ran unheld
        # in under a second, unseen: newcomer 5)
        self.hold_each = paused
        self.credits = 0
        self.closed = False

    def new_scene(self, scene: dict[str, Any]) -> None:
        with self.cond:
            if self.scene is not None and self.scene["variant"] != scene["variant"]:
                self.earlier[self.scene["variant"]] = self.warnings
                self.earlier_collisions[self.scene["variant"]] = self.collisions
            self.earlier.pop(scene["variant"], None)  # (a variant run again starts afresh)
            self.earlier_collisions.pop(scene["variant"], None)
            if self.hold_each and self.scene is not None and self.scene["variant"] != scene["variant"]:
                self.paused, self.credits = True, 0
            self.scene = scene
            self.scene_no += 1
            self.scene_first_frame = self.next_frame
            self.warnings = []
            self.collisions = []
            self.cond.notify_all()

    def publish(self, frame: dict[str, Any]) -> None:
        with self.cond:
            self.warnings.extend(frame["warnings"])
            self.collisions.extend(frame["collisions"])
            self.frames.append((self.next_frame, frame))
            self.next_frame += 1
            self.cond.notify_all()

    def control(self, command: str) -> bool:
        """Apply ``command``; False if there is no such command, or it would hold a run that cannot be held."""
        with self.cond:
            if command in ("pause", "step") and not self.holdable:
                return False
            if command == "pause":
                self.paused = True
            elif command == "resume":
                self.paused = False
            elif command == "step":
                self.paused = True
                self.credits += 1
            else:
                return False
            self.cond.notify_all()
        return True

    def may_proceed(self) -> bool:
        with self.cond:
            if self.closed or not self.paused:
                return True
            if self.credits > 0:
                self.credits -= 1
                return True
            return False

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _scene_doc(self, sent: int) -> dict[str, Any]:
        """The scene with the current variant's warnings and collisions up to frame ``sent`` (the client is sent
        the frames after it, each with its own: a page opened on a warning's tick listed it twice, a newcomer
        review), and the earlier variants' (``earlier``: a list of {variant, warnings, collisions}, in the order
        they ran). Call with ``cond`` held."""
        assert self.scene is not None
        later = [f for k, f in self.frames if k > sent and k >= self.scene_first_frame]
        warnings = self.warnings[: len(self.warnings) - sum(len(f["warnings"]) for f in later)]
        collisions = self.collisions[: len(self.collisions) - sum(len(f["collisions"]) for f in later)]
        earlier = [
            {"variant": v, "warnings": list(w), "collisions": list(self.earlier_collisions.get(v, []))}
            for v, w in self.earlier.items()
        ]
        return {
            **self.scene,
            "warnings": warnings,
            "collisions": collisions,
            "earlier": earlier,
            "holdable": self.holdable,
        }

    def all_warnings(self) -> dict[str, list[Event]]:
        """Every variant's warnings so far, by variant, in the order they ran."""
        with self.cond:
            current = {self.scene["variant"]: list(self.warnings)} if self.scene is not None else {}
            return {**{v: list(w) for v, w in self.earlier.items()}, **current}

    def all_collisions(self) -> dict[str, list[Event]]:
        """Every variant's collisions so far, by variant, in the order they ran."""
        with self.cond:
            current = {self.scene["variant"]: list(self.collisions)} if self.scene is not None else {}
            return {**{v: list(c) for v, c in self.earlier_collisions.items()}, **current}

    def _news(self, scene_no: int, sent: int, ended: threading.Event) -> bool:
        return self.closed or ended.is_set() or self.scene_no != scene_no or self.next_frame - 1 > sent

    def end(self, ended: threading.Event) -> None:
        """End the stream that was given ``ended`` (it returns at once, however long it would have waited)."""
        with self.cond:
            ended.set()
            self.cond.notify_all()

    def stream(self, ended: threading.Event | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """SSE events for one client: the scene (again whenever it changes) and every tick from the latest;
        until the run ends, or ``ended`` is set (``end``)."""
        ended = ended or threading.Event()
        scene_no = 0
        sent = -1
        while True:
            with self.cond:
                self.cond.wait_for(functools.partial(self._news, scene_no, sent, ended), timeout=15.0)
                if self.closed or ended.is_set():
                    return
                out: list[tuple[str, dict[str, Any]]] = []
                if self.scene_no != scene_no and self.scene is not None:
                    scene_no = self.scene_no
                    sent = max(sent, self.next_frame - 2)  # a new client starts at the latest tick
                    out.append(("scene", self._scene_doc(sent)))  # (what came before it)
                out += [("tick", f) for k, f in self.frames if k > sent]
                sent = self.next_frame - 1
                if not out:
                    out.append(("ping", {}))
            yield from out


class ViewObserver:
    """The live view's observer of one variant's run (``v2x.net.world.Observer``)."""

    def __init__(self, hub: Hub, scenario: Scenario, variant: str) -> None:
        self.hub = hub
        self.scenario = scenario
        self.variant = variant
        self.tap = Tap()
        self.window: deque[tuple[float, Counter[str]]] = deque()
        self.held_s = 0.0  # wall seconds this variant's world stood held by the view (left out of its wall time)
        hub.new_scene(scene_of(scenario, variant))

    async def on_tick(self, sim: Simulation, tick: int, events: list[Event]) -> None:
        t = sim.time_of(tick)
        sent = Counter(s.msg for s in self.tap.sent(sim))
        self.window.append((t, sent))
        while self.window and self.window[0][0] <= t - 1.0 + 1e-9:
            self.window.popleft()
        # messages sent in the last second (per second, once a second has passed): in the first second a rate
        # over what had elapsed showed a MAP sent once at t = 0 as "map 10" (a newcomer review)
        rates: Counter[str] = Counter()
        for _, c in self.window:
            rates.update(c)
        frame = {
            "variant": self.variant,
            "tick": tick,
            "t_s": round(t, 3),
            "final": tick == sim.n_ticks,
            "paused": self.hub.paused,
            "actors": [
                {
                    "id": p.actor,
                    "kind": p.kind,
                    "x": round(p.x_m, 3),
                    "y": round(p.y_m, 3),
                    "yaw": round(p.yaw_rad, 4),
                    "length_m": p.length_m,
                    "width_m": p.width_m,
                    "speed_mps": round(p.speed_mps, 2),
                }
                for p in poses(sim)
                if p.kind != "platform"
            ],
            "background": background_boxes(sim),  # [x, y, yaw, length, width] each
            "signals": signal_lights(sim, t),  # [x, y, light] at each signalised stop line
            "warnings": [
                {k: e.get(k) for k in ("t_s", "app", "target", "other", "ttc_s")}
                for e in events
                if e["type"] == "warning"
            ],
            "collisions": [
                {"actors": e["actors"], "t_s": e["t_s"], "relative_speed_mps": e.get("relative_speed_mps")}
                for e in events
                if e["type"] == "collision"
            ],
            "rates": {m: float(n) for m, n in sorted(rates.items())},
        }
        self.hub.publish(frame)
        if not self.hub.may_proceed():  # held (paused): this time is the user's, not the run's wall time
            held_since = time.monotonic()
            while not self.hub.may_proceed():
                await asyncio.sleep(0.02)
            self.held_s += time.monotonic() - held_since


log = logging.getLogger(__name__)

#: A connection that sends no complete request (line and headers) this long after it opened is closed: an
#: idle one held a server thread for good, and one that sent a byte every few seconds did so past a timeout
#: per read (attack review 2).
REQUEST_TIMEOUT_S = 10.0
#: At most this many event streams at once (each holds a thread); one more ends the oldest.
MAX_STREAMS = 32
#: At most this many connections at once (a thread each). One more closes the oldest that has not yet sent
#: its whole request, if there is one (else it is closed itself): so a page load always gets in, however
#: many idle connections someone keeps re-opening (attack review 7: 32 held streams and 40 threads
#: re-opening idle connections left `GET /` unanswered 19 times of 19). A connection that has sent its
#: request is either answered at once or an event stream (at most MAX_STREAMS).
MAX_CONNECTIONS = 64
#: At most this many bytes of request line and headers per connection (the page's own requests send well under
#: 2 KiB). http.server takes up to 100 header lines of 64 KiB each: 64 connections holding such heads took a
#: run from 92 MB to 620 MB (attack review 12). More is answered 431 (in the request line: 414) and closed.
MAX_REQUEST_HEAD_BYTES = 16 * 1024


class _HeadTooLong(http.client.LineTooLong):
    """A request head past ``MAX_REQUEST_HEAD_BYTES`` (``LineTooLong``'s own text names http.client's 65536)."""

    def __init__(self) -> None:
        http.client.HTTPException.__init__(self, f"a request head over {MAX_REQUEST_HEAD_BYTES} bytes")


class _HeadBudget(io.BufferedIOBase):
    """The connection's input with a budget for the request's head: a read past ``MAX_REQUEST_HEAD_BYTES``
    raises ``_HeadTooLong``, which http.server answers 431 in the headers (and ``_Handler`` 414 in the request
    line)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self.raw_file = raw
        self.left = MAX_REQUEST_HEAD_BYTES

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self.raw_file.readline, size)

    def read(self, size: int | None = -1) -> bytes:  # (a body: the controls read none; bounded all the same)
        return self._take(self.raw_file.read, size)

    def _take(self, reader: Any, size: int | None) -> bytes:
        cap = self.left + 1 if size is None or size < 0 else min(size, self.left + 1)
        data: bytes = reader(cap)
        self.left -= len(data)
        if self.left < 0:
            raise _HeadTooLong
        return data

    def readable(self) -> bool:
        return True


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_activate(self) -> None:
        self.lock = threading.Lock()
        # the connections being served, oldest first: True once its request is whole (``requested``)
        self.connections: dict[Any, bool] = {}
        # the event streams, oldest first: each one's ``Hub.stream`` end
        self.streams: dict[Any, threading.Event] = {}
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            if len(self.connections) >= MAX_CONNECTIONS:
                idle = next((c for c, requested in self.connections.items() if not requested), None)
                if idle is None:
                    self.shutdown_request(request)  # too many at once, all served: closed, no thread
                    return
                del self.connections[idle]  # (its thread sees the end of its input and returns)
                _close(idle)
            self.connections[request] = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self.lock:
                self.connections.pop(request, None)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.connections.pop(request, None)

    def requested(self, request: Any) -> None:
        """``request``'s connection has sent its whole request: no longer one to close for a newcomer."""
        with self.lock:
            if request in self.connections:
                self.connections[request] = True

    def open_stream(self, request: Any, hub: Hub) -> threading.Event:
        """Room for one more event stream, the oldest ended if there are MAX_STREAMS (a new page's stream
        always starts: 32 streams held by someone else refused it, 503); its end, for ``Hub.stream``."""
        ended = threading.Event()
        with self.lock:
            while self.streams and len(self.streams) >= MAX_STREAMS:
                oldest = next(iter(self.streams))
                hub.end(self.streams.pop(oldest))
                _close(oldest)
            self.streams[request] = ended
        return ended

    def close_stream(self, request: Any) -> None:
        with self.lock:
            self.streams.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, closed mid-answer, timed out) is no error of the run's: no traceback
        on its stderr (an attack review got 33 for 40 connections reset after their request)."""
        log.debug("live view: connection from %s ended: %s", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    hub: Hub
    page: bytes
    token: str
    server: _Server
    hosts: frozenset[str]  # what a request's Host may name (``host_names``)
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadBudget(self.rfile)
        # the whole request within REQUEST_TIMEOUT_S of the connection (``timeout`` bounds each read only)
        self._deadline = threading.Timer(REQUEST_TIMEOUT_S, self._too_slow)
        self._deadline.daemon = True
        self._deadline.start()

    def _too_slow(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def handle_one_request(self) -> None:
        self.raw_requestline = b""
        try:
            super().handle_one_request()
        except _HeadTooLong:
            if self.raw_requestline:
                raise  # (past the request line: parse_request answered 431 already)
            # The request line itself: http.server answers 414 to one over its 64 KiB, and let the budget's
            # exception end the connection without a word (diff review 26).
            self.requestline = self.request_version = self.command = ""
            self.send_error(414, "Request line too long")
            self.close_connection = True

    def parse_request(self) -> bool:
        ok = super().parse_request()  # (reads the headers)
        self._deadline.cancel()
        self.server.requested(self.request)
        return ok

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _host_ok(self) -> bool:
        address = self.server.server_address
        port = address[1] if isinstance(address, tuple) else 0
        name, _, given = self.headers.get("Host", "").rpartition(":")
        local = str(self.connection.getsockname()[0])  # the address the request came in on: ours, no name to rebind
        if given == str(port) and (name.lower() in self.hosts or name.strip("[]") == local):
            return True
        self._send(403, b"unexpected Host\n", "text/plain")
        return False

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        if self.path in ("/", "/index.html"):
            self._send(200, self.page, "text/html; charset=utf-8")
        elif self.path == "/state":
            hub = self.hub
            with hub.cond:
                doc = {"scene": hub.scene, "tick": hub.frames[-1][1] if hub.frames else None, "paused": hub.paused}
            doc["warnings"] = hub.all_warnings()
            doc["collisions"] = hub.all_collisions()
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif self.path == "/events":
            ended = self.server.open_stream(self.request, self.hub)
            try:
                self._stream(ended)
            finally:
                self.server.close_stream(self.request)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _stream(self, ended: threading.Event) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(OSError):
            for name, doc in self.hub.stream(ended):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(doc)}\n\n".encode())
                self.wfile.flush()

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        # (as bytes: on a str with a character beyond ASCII compare_digest raises, and the request got no
        # answer at all: attack review 7)
        given = self.headers.get("X-V2X-Token", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self.token.encode()):
            self._send(403, b"a control needs the page's X-V2X-Token\n", "text/plain")
            return
        prefix = "/control/"
        command = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
        if self.hub.control(command):
            self._send(200, json.dumps({"paused": self.hub.paused}).encode(), "application/json")
        elif command in ("pause", "step"):
            self._send(409, HOLD_REFUSED.encode() + b"\n", "text/plain")
        else:
            self._send(404, b"unknown control\n", "text/plain")


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::"})


def host_names(host: str) -> frozenset[str]:
    """The names (lower case; IPv6 addresses in brackets) a request's ``Host`` may give for a server bound to
    ``host``: the loopback's, ``host`` itself, and for a wildcard (0.0.0.0, ::) this machine's name, full name
    and addresses."""
    names = set(LOOPBACK)
    if host in WILDCARDS:
        names |= {socket.gethostname(), socket.getfqdn()}
        with contextlib.suppress(OSError):
            names |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    else:
        names.add(host)
    return frozenset((f"[{n}]" if ":" in n else n).lower() for n in names)


HOLD_REFUSED = "a real-time run cannot be held: its ticks would all be late (hold a --mode lockstep run)"


class ViewServer:
    """The page's server in a daemon thread (``start``/``stop``), bound to ``host``:``port`` (0: any
    free port). ``holdable``: False for a real-time run (Pause and Step are refused, 409)."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 8642, paused: bool = False, holdable: bool = True
    ) -> None:
        if paused and not holdable:
            raise ValueError(HOLD_REFUSED)
        self.hub = Hub(paused=paused, holdable=holdable)
        self.token = secrets.token_hex(16)  # the controls' (see the module's docstring)
        page = files("v2x.run").joinpath("view.html").read_bytes().replace(b"__V2X_TOKEN__", self.token.encode())
        hosts = host_names(host)
        handler = type("Handler", (_Handler,), {"hub": self.hub, "page": page, "token": self.token, "hosts": hosts})
        server = type("Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        self.httpd = server((host, port), handler)
        self.host = host
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="v2x-view", daemon=True)

    @property
    def url(self) -> str:
        port = self.httpd.server_address[1]
        host = socket.gethostname() if self.host in WILDCARDS else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the page."""
        return self.host in LOOPBACK

    def start(self) -> ViewServer:
        self.thread.start()
        return self

    def observer(self, scenario: Scenario, variant: str) -> ViewObserver:
        return ViewObserver(self.hub, scenario, variant)

    def stop(self) -> None:
        self.hub.close()
        self.httpd.shutdown()
        self.httpd.server_close()
