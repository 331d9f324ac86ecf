"""Background traffic from SUMO: the scenario's ``sumo`` block (issue #10). Unlike the rest of ``v2x.sim``
this part does I/O - it drives SUMO, in this process (libsumo) or over a local socket (TraCI) - but the
simulation sees only values through the interface below.

A second mover of background traffic beside ``v2x.sim.background.Background`` (the ``flows`` and our own
IDM), behind the same interface (``BackgroundTraffic``), so that the referee, the sensors, the channel and
the fleet agent treat SUMO's vehicles exactly as the flows' ones. SUMO (libsumo, else the eclipse-sumo
binary in a process of its own, over TraCI: below) runs with ``--step-length`` = the scenario's tick and a
fixed ``--seed`` (the block's, else the run's; not the variant's, so both variants get the same demand),
which makes its run deterministic. Each tick (``step``), after the story actors' truths are applied:

1. the story vehicles (cars, trucks, buses, emergency vehicles of the scenario) are placed in SUMO where
   their agents say they are (``vehicle.moveToXY``, keepRoute 2: mapped onto the nearest lane), so that SUMO's
   drivers follow them and brake for them; one is in SUMO while its front is on a SUMO lane. Road
   users the referee holds after a collision (wrecks) are placed at rest the same way;
2. the equipped SUMO vehicles that were warned (the fleet's FCW, ``warned``) are braked: after the warned
   driver's ``reaction_s`` their speed is commanded down at ``brake_mps2`` (``vehicle.setSpeed``; SUMO's
   own car-following still keeps them from driving into anyone) until they stand, then SUMO's driver takes
   over again;
3. SUMO advances one step; the vehicles it inserted take world slots (``sumo-<SUMO id>``, the lowest free
   slot), the ones that arrived leave the world; every SUMO vehicle's pose (the centre of its box: SUMO
   reports the front bumper), speed and acceleration are read through subscriptions and written to the
   world.

libsumo (SUMO in this process) where the libsumo package is installed, in the eclipse-sumo wheel's version
(``_libsumo``), and free: it holds one simulation per process, so a second one built beside it (a test, the
other variant if it ever overlapped) runs over TraCI; both give the same traffic. libsumo has no port for
another process to take. Otherwise TraCI over SUMO's own binary (the eclipse-sumo wheel alone), with
subscriptions a few round trips per tick.

SUMO's TraCI server listens on a TCP port (``--remote-port``, on all interfaces: SUMO has no option to bind
one) and takes the first connection. The port is given in a config file in a private temporary folder, not
on SUMO's command line (which every local user can read: one took the port first and hung or steered the
run). The testbed sends nothing over its connection before it has checked, in ``/proc`` (Linux), that the
connection's other end is a socket of the SUMO process it started (``peer_owner``); otherwise the connection
is closed unused and SUMO is started again on another port, up to ``START_TRIES`` times. Where ``/proc``
does not tell (not Linux) a warning says the peer is not checked. Every TraCI read waits at most
``ANSWER_TIMEOUT_S`` for SUMO's answer: a SUMO that stops answering ends the run with a SumoError (a run
error, exit 3) instead of hanging it, so a SIGINT / SIGTERM sent meanwhile takes effect at most that long
after. Still open: a process that connects to SUMO's port before the testbed does holds that SUMO (running
as the testbed's user) until the testbed notices and stops it (docs/SECURITY.md "SUMO's TraCI port").

Which SUMO vehicles have an OBU is drawn per vehicle from its SUMO id and the seed (``penetration``), so the
same vehicle is equipped in both variants whatever order SUMO inserts them in; a vehicle (or flow) of the
demand can say so itself with ``<param key="v2x.obu" value="true"/>`` (or ``"false"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import logging
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from v2x import units
from v2x.core import WorldState
from v2x.scenario.model import Scenario
from v2x.scenario.sumo import INSTALL_HINT, read_lanes
from v2x.sim.background import KIND, BackgroundStats, WorldVehicles, background_capacity
from v2x.wire.protocol import MAX_VEHICLE_SIZE_M

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]

STORY_KINDS = ("car", "truck", "bus", "emergency")  # the story road users SUMO's drivers see
VCLASS_KIND = {"truck": "truck", "trailer": "truck", "delivery": "truck", "bus": "bus", "coach": "bus"}
VCLASS_KIND |= {"emergency": "emergency", "authority": "emergency"}  # others: car
OBU_PARAM = "v2x.obu"  # a vehicle's <param key="v2x.obu" value="true|false"/> in the demand: OBU or not
ON_LANE_M = 3.0  # a story vehicle is in SUMO while its front is this close to a SUMO lane's centre line
START_TRIES = 3  # SUMO starts, each on a newly found free port
CONNECT_TRIES = 200  # TraCI connection attempts, CONNECT_WAIT_S apart, while SUMO starts
CONNECT_WAIT_S = 0.025
ACCEPT_WAIT_S = 5.0  # once connected: SUMO has accepted the connection (its socket in SUMO's process) within this
ANSWER_TIMEOUT_S = 30.0  # a TraCI read waits at most this long for SUMO's answer (one step of SUMO's: ms)
SPEED_MODE_WARNED = 0b11011  # SUMO's default checks but the vehicle type's deceleration limit (bit 2)
SPEED_MODE_DEFAULT = 0b11111
# TraCI variable ids (traci.constants), as numbers so that this module imports without SUMO.
VAR_POSITION, VAR_SPEED, VAR_ANGLE, VAR_ACCELERATION = 0x42, 0x40, 0x43, 0x72
VAR_DEPARTED_VEHICLES_IDS, VAR_ARRIVED_VEHICLES_IDS = 0x74, 0x7A
_IN_PROCESS = threading.Lock()  # held while libsumo runs a simulation (it holds one per process)


class SumoNotInstalled(RuntimeError):
    """SUMO (the eclipse-sumo wheel) is not installed; the message says what to install."""


class SumoError(RuntimeError):
    """SUMO did not start, or stopped during the run (its own error message, e.g. a route over an edge the
    network does not have, is in the message)."""


def _traci() -> tuple[str, Any]:
    """SUMO_HOME of the eclipse-sumo wheel and its ``traci`` module (SUMO's tools put on sys.path)."""
    try:
        sumo = importlib.import_module("sumo")
    except ImportError:
        raise SumoNotInstalled(f"this scenario needs SUMO (the eclipse-sumo package): {INSTALL_HINT}") from None
    home = str(sumo.SUMO_HOME)
    tools = os.path.join(home, "tools")
    if tools not in sys.path:
        sys.path.append(tools)
    return home, importlib.import_module("traci")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now (another process may take it before SUMO does: ``peer_owner``
    tells)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_net_hex(ip: str) -> str:
    """``ip`` (an IPv4 or IPv6 address) as /proc/net/tcp{,6} write it: 32-bit words in the host's order."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    raw = socket.inet_pton(family, ip)
    return "".join(f"{word:08X}" for word in struct.unpack(f"={len(raw) // 4}I", raw))


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The inode of the TCP socket of this host whose own address is ``local`` and peer ``remote`` (0 while it
    waits in a listener's queue, not yet accepted); None if there is no such socket or /proc does not say."""
    wanted = []
    for table, mapped in (("/proc/net/tcp", ""), ("/proc/net/tcp6", "::ffff:")):
        try:
            key = (
                f"{_proc_net_hex(mapped + local[0])}:{local[1]:04X}",
                f"{_proc_net_hex(mapped + remote[0])}:{remote[1]:04X}",
            )
        except OSError:
            continue
        wanted.append((table, key))
    for table, key in wanted:
        try:
            with open(table, encoding="ascii") as stream:
                next(stream, None)  # the header
                for line in stream:
                    fields = line.split()
                    if len(fields) > 9 and (fields[1], fields[2]) == key:
                        return int(fields[9])
        except (OSError, ValueError):
            continue
    return None


def _owns(pid: int, inode: int) -> bool:
    """Whether process ``pid`` holds socket ``inode`` (one of its file descriptors in /proc/PID/fd)."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):  # (closed meanwhile)
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    return False


def peer_owner(sock: socket.socket, proc: subprocess.Popen[bytes], wait_s: float = ACCEPT_WAIT_S) -> str | None:
    """Who holds the other end of ``sock`` (a connection to a port of this host): ``"ours"`` once process
    ``proc`` has accepted it, ``"another"`` when another process did, ``"ended"`` when ``proc`` ended before
    it could tell (SUMO quits when it cannot listen on its port: another process took it), ``"late"`` when nobody
    accepted it within ``wait_s`` (SUMO takes one connection: another process's came first); None where /proc
    does not tell (not Linux)."""
    if not os.path.exists("/proc/net/tcp") or not os.path.isdir(f"/proc/{proc.pid}/fd"):
        return None
    try:
        ours, theirs = sock.getsockname()[:2], sock.getpeername()[:2]
    except OSError:  # reset already: the listener took another connection (SUMO takes one) and closed
        return "ended" if proc.poll() is not None else "late"
    deadline = time.monotonic() + wait_s
    while True:
        inode = _socket_inode((str(theirs[0]), int(theirs[1])), (str(ours[0]), int(ours[1])))
        if inode:  # accepted: by proc, or by whoever listened on the port first
            if _owns(proc.pid, inode):
                return "ours"
            with contextlib.suppress(subprocess.TimeoutExpired):  # (or by proc, which quit, closing it, since)
                proc.wait(timeout=0.2)
            return "another" if proc.poll() is None else "ended"
        if proc.poll() is not None:
            return "ended"
        if time.monotonic() > deadline:
            return "late"
        time.sleep(CONNECT_WAIT_S / 5)


class _TimedSocket:
    """The TraCI connection's socket with a read timeout (``ANSWER_TIMEOUT_S``) that is remembered: traci's
    Connection takes any socket error as "Connection closed by SUMO."."""

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        sock.settimeout(timeout_s)
        self.sock = sock
        self.timeout_s = timeout_s
        self.timed_out = False

    def recv(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except TimeoutError:
            self.timed_out = True
            raise

    def send(self, data: bytes) -> int:  # (times out too: SUMO reads nothing, its buffer is full)
        try:
            return self.sock.send(data)
        except TimeoutError:
            self.timed_out = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _libsumo() -> Any | None:
    """SUMO's libsumo module (the libsumo package: SUMO in this process, no port, no process of its own), None
    if it is not installed, or is another version than the eclipse-sumo wheel (then SUMO runs over TraCI: both
    variants of a run must drive the same SUMO). ``_traci`` first: libsumo imports SUMO's traci."""
    if importlib.util.find_spec("libsumo") is None:
        return None
    try:
        ours, theirs = metadata.version("eclipse-sumo"), metadata.version("libsumo")
    except metadata.PackageNotFoundError:
        return None
    if ours != theirs:
        log.warning("libsumo %s is not eclipse-sumo's version (%s): SUMO runs over TraCI", theirs, ours)
        return None
    try:
        return importlib.import_module("libsumo")
    except ImportError as exc:
        log.warning("libsumo does not load (%s): SUMO runs over TraCI", exc)
        return None


def equipped(vehicle_id: str, seed: int, penetration: float) -> bool:
    """Whether SUMO's vehicle ``vehicle_id`` has an OBU: a uniform draw from its id and ``seed``."""
    if penetration <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{vehicle_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < penetration


def world_id(sumo_id: str) -> str:
    """The world's id of SUMO's vehicle ``sumo_id``: ``sumo-`` and the id with characters other than
    letters, digits, ``-`` and ``_`` as ``_``."""
    return "sumo-" + "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in sumo_id)


class SumoBackground(WorldVehicles):
    """The SUMO traffic of one run over ``world`` (sized by ``background_capacity``). ``seed``: the run's."""

    def __init__(self, scenario: Scenario, world: WorldState, *, seed: int) -> None:
        spec = scenario.sumo
        assert spec is not None
        home, traci = _traci()
        self._traci_error: type[Exception] = traci.exceptions.TraCIException
        self.world = world
        self.tick_s = float(scenario.tick_s)
        self.n_ticks = scenario.n_ticks
        self.seed = spec.seed if spec.seed is not None else seed
        self.penetration = float(spec.penetration)
        self.reaction_s = float(spec.driver.reaction_s)
        self.brake_mps2 = float(spec.driver.brake_mps2)
        self.capacity = background_capacity(scenario)
        self.stats = BackgroundStats(slowed=0)
        self.new_ids: list[str] = []
        self.left_slots: list[int] = []
        # SUMO's vehicles in the world: SUMO id -> (world id, slot, equipped)
        self.slot: dict[str, int] = {}
        self.wid: dict[str, str] = {}
        self.sid_of: dict[str, str] = {}  # world id -> SUMO id
        self.is_equipped: dict[str, bool] = {}
        self.sumo_of_slot: dict[int, str] = {}
        self.speed: dict[str, float] = {}
        self.acc: dict[str, float] = {}
        self.overflow = 0  # SUMO vehicles the world had no room for (never seen by the world)
        self.brake_at: dict[str, float] = {}  # warned SUMO vehicles: when their drivers brake
        self.braking: set[str] = set()
        self.ever_slowed: set[str] = set()
        # The story vehicles: world slot -> SUMO id (``v2x.<actor id>``, not an id SUMO's demand can have...
        # normally; a clash is SUMO's error at insertion).
        self.story = {world.slot_of(a.id): f"v2x.{a.id}" for a in scenario.actors if a.kind in STORY_KINDS}
        self._story_ids = set(self.story.values())
        self._story_slot = {sid: slot for slot, sid in self.story.items()}
        self._routes = 0  # routes added for story vehicles
        # SUMO's lanes as segments (from the network file), to tell whether a story vehicle is on one.
        shapes = [np.asarray(lane.shape, dtype=np.float64) for lane in read_lanes(Path(spec.net))]
        self._seg_a = np.concatenate([p[:-1] for p in shapes])
        self._seg_d = np.concatenate([np.diff(p, axis=0) for p in shapes])
        self._seg_len2 = np.maximum((self._seg_d**2).sum(axis=1), 1e-12)
        self.story_in: set[int] = set()  # of those, the ones in SUMO
        self.held_in: set[int] = set()  # background wrecks already stopped in SUMO
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - SUMO's stderr, read if it fails to start; closed by close()
        self._proc: subprocess.Popen[bytes] | None = None
        self._answers: _TimedSocket | None = None
        lib = _libsumo()
        self.in_process = lib is not None and _IN_PROCESS.acquire(blocking=False)
        if lib is not None and self.in_process:  # SUMO in this process: no port, no other process to trust
            self._traci_error = lib.TraCIException
            self._fatal: tuple[type[Exception], ...] = (lib.FatalTraCIError, lib.TraCIException)
            self._finalizer: weakref.finalize[..., Any] = weakref.finalize(self, _close_in_process, lib, self._err)
            try:
                lib.start(["sumo", *self._options(spec.net, spec.routes)])
            except self._fatal as exc:
                raise self._failed(exc) from None
            except BaseException:
                self.close()
                raise
            self.conn: Any = lib
        else:
            if lib is not None:
                log.info("libsumo runs another simulation in this process: SUMO over TraCI")
            for attempt in range(START_TRIES):  # another process may take the free port before SUMO does
                try:
                    proc, self.conn = self._start(home, traci, spec.net, spec.routes)
                    break
                except SumoError:
                    if attempt == START_TRIES - 1:
                        self._err.close()
                        raise
            self._proc = proc
            self._finalizer = weakref.finalize(self, _close, self.conn, proc, self._err)
            # (OSError: traci's send does not catch a timeout or a reset)
            self._fatal = (traci.exceptions.FatalTraCIError, self._traci_error, OSError)
        try:
            self.conn.simulation.subscribe([VAR_DEPARTED_VEHICLES_IDS, VAR_ARRIVED_VEHICLES_IDS])
        except self._fatal as exc:
            raise self._failed(exc) from None

    def _start(self, home: str, traci: Any, net: str, routes: str) -> tuple[subprocess.Popen[bytes], Any]:
        with tempfile.TemporaryDirectory(prefix="v2x-sumo-") as private:  # (mode 0700: ours alone)
            return self._start_with(home, traci, net, routes, Path(private) / "traci.sumocfg")

    def _start_with(
        self, home: str, traci: Any, net: str, routes: str, config: Path
    ) -> tuple[subprocess.Popen[bytes], Any]:
        port = free_port()  # for SUMO's TraCI server, told in a file only we can read, not on its command line
        config.write_text(
            f'<configuration><traci_server><remote-port value="{port}"/></traci_server></configuration>\n'
        )
        cmd = [os.path.join(home, "bin", "sumo"), "-c", str(config), *self._options(net, routes)]
        err = self._err
        err.seek(0)
        err.truncate()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "SUMO_HOME": home}, close_fds=True
        )
        why, stopped = "", False
        for _ in range(CONNECT_TRIES):
            try:
                conn = traci.connection.Connection("127.0.0.1", port, proc, None, True, None)
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(CONNECT_WAIT_S)
                continue
            # Nothing is sent before the other end is known to be our SUMO: another process may have taken
            # the port (guessed it, or seen SUMO's listener in /proc/net/tcp and raced for the next such port),
            # and would then get or steer the run's TraCI.
            owner = peer_owner(conn._socket, proc)  # (traci's Connection has no public socket)
            if owner in ("another", "ended", "late"):
                conn._socket.close()
                conn._socket = None
                if owner == "another":
                    why = f"another process listened on SUMO's TraCI port {port} (the connection was closed unused)"
                    log.warning("SUMO pid %d: %s", proc.pid, why)
                elif owner == "late":
                    why = f"SUMO did not accept the TraCI connection within {ACCEPT_WAIT_S:g} s"
                else:  # SUMO quit (e.g. refusing the demand): its words say why
                    stopped = True
                break
            if owner is None:
                log.warning(
                    "SUMO pid %d: cannot tell which process answers on its TraCI port %d (no /proc here)",
                    proc.pid,
                    port,
                )
            self._answers = _TimedSocket(conn._socket, ANSWER_TIMEOUT_S)
            conn._socket = self._answers
            return proc, conn
        proc.kill()
        proc.wait()
        err.seek(0)
        detail = err.read().decode("utf-8", "replace").strip()
        if stopped:
            raise SumoError(f"SUMO stopped: {detail[-2000:] or 'no word why'}")
        said = "; ".join(part for part in (why, detail) if part) or "no connection"
        raise SumoError(f"SUMO did not start ({' '.join(cmd)}): {said}")

    def _options(self, net: str, routes: str) -> list[str]:
        """SUMO's options (its command line less the binary, and the TraCI port)."""
        options = ["-n", net, "-r", routes]
        options += ["--step-length", f"{self.tick_s:g}", "--seed", str(self.seed), "--begin", "0"]
        options += ["--time-to-teleport", "-1", "--collision.action", "none", "--no-step-log", "true"]
        options += ["--xml-validation", "never", "--no-warnings", "true", "--duration-log.disable", "true"]
        return options

    def _failed(self, exc: Exception) -> SumoError:
        """SUMO failed (``exc``, from TraCI): the error to raise, with what SUMO said on stderr."""
        detail = str(exc)
        if self._proc is None:  # libsumo: SUMO's words are the exception's
            self.close()
            return SumoError(f"SUMO stopped: {detail.strip()[-2000:]}")
        if self._answers is not None and self._answers.timed_out:  # SUMO is there but silent: no last words
            self._proc.kill()
            self.close()
            return SumoError(
                f"SUMO stopped: no answer from SUMO (pid {self._proc.pid}) within {self._answers.timeout_s:g} s"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):  # SUMO says why as it quits
            self._proc.wait(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self._err.seek(0)
            detail = self._err.read().decode("utf-8", "replace").strip()[-2000:] or detail
        self.close()
        return SumoError(f"SUMO stopped: {detail}")

    def close(self) -> None:
        """Stop SUMO (the run is over)."""
        self._finalizer()

    # -- the interface of v2x.sim.background.BackgroundTraffic -----------------------------------------
    @property
    def present(self) -> NDArray[np.intp]:
        """The world slots of SUMO's vehicles, ascending."""
        return np.array(sorted(self.slot.values()), dtype=np.intp)

    def equipped(self) -> tuple[NDArray[np.int64], NDArray[np.intp], F64, F64]:
        """The equipped SUMO vehicles in the world, in slot order: (their indices, slots, speeds, accelerations)."""
        ids = sorted((s, i) for i, s in self.slot.items() if self.is_equipped[i])
        slots = np.array([s for s, _ in ids], dtype=np.intp)
        speed = np.array([self.speed.get(i, 0.0) for _, i in ids])
        acc = np.array([self.acc.get(i, 0.0) for _, i in ids])
        return np.arange(len(ids), dtype=np.int64), slots, speed, acc

    def warned(self, vehicle_id: str, t: float) -> None:
        """The fleet's FCW warned ``vehicle_id`` at ``t``: unless its driver brakes already, he will after his
        reaction time."""
        sid = self.sid_of.get(vehicle_id)
        if sid is not None and sid not in self.brake_at:
            self.brake_at[sid] = t + self.reaction_s

    # -- one tick -----------------------------------------------------------------------------------
    def step(self, tick: int, t: float, wrecks: set[int] | Mapping[int, Any]) -> None:
        """Advance SUMO to ``t`` and bring the world up to date (see the module's docstring); SumoError if
        SUMO fails."""
        try:
            self._step(t, wrecks)
            if tick == self.n_ticks:  # SUMO's vehicles still waiting to enter (the run ends)
                self.stats.waiting_at_end = len(self.conn.simulation.getPendingVehicles())
        except self._fatal as exc:
            raise self._failed(exc) from None

    def _step(self, t: float, wrecks: set[int] | Mapping[int, Any]) -> None:
        vehicle = self.conn.vehicle
        for slot, sid in self.story.items():
            self._place(slot, sid, slot in wrecks)
        for slot in wrecks:  # SUMO's vehicles in a collision: at rest in SUMO too
            wreck = self.sumo_of_slot.get(slot)
            if wreck is not None and slot not in self.held_in:
                self.held_in.add(slot)
                self.brake_at.pop(wreck, None)
                self.braking.discard(wreck)
                vehicle.setSpeedMode(wreck, 0)
                vehicle.setSpeed(wreck, 0.0)
        for sid, at in sorted(self.brake_at.items()):
            if at > t + 1e-9 or sid not in self.slot or self.slot[sid] in self.held_in:
                continue
            v = self.speed.get(sid, 0.0)
            if sid not in self.braking:
                self.braking.add(sid)
                self.ever_slowed.add(sid)
                vehicle.setSpeedMode(sid, SPEED_MODE_WARNED)
            if v <= 1e-3:  # standing: his own driving again
                vehicle.setSpeed(sid, -1.0)
                vehicle.setSpeedMode(sid, SPEED_MODE_DEFAULT)
                self.braking.discard(sid)
                del self.brake_at[sid]
            else:
                vehicle.setSpeed(sid, max(0.0, v - self.brake_mps2 * self.tick_s))
        self.conn.simulationStep()
        got = self.conn.simulation.getSubscriptionResults()
        for sid in got[VAR_ARRIVED_VEHICLES_IDS]:
            self._leave(sid)
            self.story_in.discard(self._story_slot.get(sid, -1))  # SUMO let a story vehicle arrive
        for sid in got[VAR_DEPARTED_VEHICLES_IDS]:
            self._enter(sid)
        self._write(vehicle.getAllSubscriptionResults(), wrecks)
        st = self.stats
        st.max_present = max(st.max_present, len(self.slot))
        st.slowed = len(self.ever_slowed)

    def _place(self, slot: int, sid: str, held: bool) -> None:
        """Story vehicle ``slot`` in SUMO where the world has it, while its front is on a SUMO lane (within
        ``ON_LANE_M`` of a lane's centre line): added when it comes onto one, removed when it leaves them."""
        w = self.world
        yaw = float(w.heading_rad[slot])
        half = float(w.length_m[slot]) / 2
        fx, fy = float(w.x[slot]) + half * math.cos(yaw), float(w.y[slot]) + half * math.sin(yaw)
        vehicle = self.conn.vehicle
        if not self._on_lane(fx, fy):
            if slot in self.story_in:
                log.info("story vehicle %s left SUMO's lanes", sid)
                self.story_in.discard(slot)
                with contextlib.suppress(self._traci_error):  # (SUMO may have let it arrive already)
                    vehicle.remove(sid)
            return
        if slot not in self.story_in:
            edge, pos, lane = self.conn.simulation.convertRoad(fx, fy)
            speed = float(np.hypot(w.vx[slot], w.vy[slot]))
            self._routes += 1
            route = f"{sid}.route{self._routes}"
            self.conn.route.add(route, [edge])
            vehicle.add(
                sid, route, depart="now", departLane=str(lane), departPos=f"{pos:.3f}", departSpeed=f"{speed:.3f}"
            )
            vehicle.setLength(sid, float(w.length_m[slot]))
            vehicle.setWidth(sid, float(w.width_m[slot]))
            vehicle.setLaneChangeMode(sid, 0)
            self.story_in.add(slot)
        vehicle.moveToXY(sid, "", -1, fx, fy, units.enu_yaw_rad_to_compass_deg(yaw), 2, ON_LANE_M)
        if held:
            vehicle.setSpeedMode(sid, 0)
            vehicle.setSpeed(sid, 0.0)

    def _on_lane(self, x: float, y: float) -> bool:
        """Whether (x, y) is within ``ON_LANE_M`` of the centre line of a lane of SUMO's network."""
        a, d = self._seg_a, self._seg_d
        t = np.clip(((x - a[:, 0]) * d[:, 0] + (y - a[:, 1]) * d[:, 1]) / self._seg_len2, 0.0, 1.0)
        dist2 = (a[:, 0] + t * d[:, 0] - x) ** 2 + (a[:, 1] + t * d[:, 1] - y) ** 2
        return bool(dist2.min() <= ON_LANE_M**2)

    def _enter(self, sid: str) -> None:
        if sid in self._story_ids:
            return
        if len(self.slot) >= self.capacity:
            if not self.overflow:
                log.warning(
                    "SUMO has more vehicles than the world has room for (%d): the others are not seen", self.capacity
                )
            self.overflow += 1
            return
        vehicle = self.conn.vehicle
        kind = VCLASS_KIND.get(vehicle.getVehicleClass(sid), "car")
        wid = world_id(sid)
        while wid in self.world:  # a clash after the characters were replaced
            wid += "_"
        length, width = float(vehicle.getLength(sid)), float(vehicle.getWidth(sid))
        if not (0 < length <= MAX_VEHICLE_SIZE_M and 0 < width <= MAX_VEHICLE_SIZE_M):  # (the loader checks the
            raise SumoError(  # demand's vTypes; SUMO's defaults for a vClass, or a file SUMO includes, here)
                f"SUMO's vehicle {sid[:80]!r} (vType {vehicle.getTypeID(sid)[:80]!r}) is {length:g} m x {width:g} m: "
                f"a vehicle of the world is at most {MAX_VEHICLE_SIZE_M:g} m long and wide"
            )
        slot = self.world.add(wid, KIND[kind], length, width)
        self.slot[sid], self.wid[sid], self.sumo_of_slot[slot], self.sid_of[wid] = slot, wid, sid, sid
        obu = vehicle.getParameter(sid, OBU_PARAM).strip().lower()  # the demand's word, else the draw
        self.is_equipped[sid] = (
            obu == "true" if obu in ("true", "false") else equipped(sid, self.seed, self.penetration)
        )
        vehicle.subscribe(sid, [VAR_POSITION, VAR_SPEED, VAR_ANGLE, VAR_ACCELERATION])
        self.new_ids.append(wid)
        self.stats.spawned += 1
        self.stats.equipped += int(self.is_equipped[sid])

    def _leave(self, sid: str) -> None:
        slot = self.slot.pop(sid, None)
        if slot is None:
            return
        wid = self.wid.pop(sid)
        del self.sid_of[wid]
        self.world.remove(wid)
        del self.sumo_of_slot[slot]
        self.held_in.discard(slot)
        self.speed.pop(sid, None)
        self.acc.pop(sid, None)
        self.brake_at.pop(sid, None)
        self.braking.discard(sid)
        self.left_slots.append(slot)
        self.stats.left += 1

    def _write(self, results: Mapping[str, Mapping[int, Any]], wrecks: set[int] | Mapping[int, Any]) -> None:
        ids = [sid for sid in sorted(self.slot, key=self.slot.__getitem__) if self.slot[sid] not in wrecks]
        if not ids:
            return
        front = np.array([results[i][VAR_POSITION] for i in ids], dtype=np.float64)
        v = np.array([results[i][VAR_SPEED] for i in ids], dtype=np.float64)
        a = np.array([results[i][VAR_ACCELERATION] for i in ids], dtype=np.float64)
        yaw = units.compass_deg_to_enu_yaw_rad(np.array([results[i][VAR_ANGLE] for i in ids], dtype=np.float64))
        slots = np.array([self.slot[i] for i in ids], dtype=np.intp)
        half = self.world.length_m[slots] / 2
        c, s = np.cos(yaw), np.sin(yaw)
        self.world.set_state(slots, front[:, 0] - half * c, front[:, 1] - half * s, v * c, v * s, a * c, a * s, yaw)
        self.speed.update(zip(ids, v.tolist(), strict=True))
        self.acc.update(zip(ids, a.tolist(), strict=True))


def _close_in_process(lib: Any, err: IO[bytes]) -> None:
    try:
        with contextlib.suppress(Exception):  # SUMO gone already: nothing to close
            lib.close()
    finally:
        _IN_PROCESS.release()
        err.close()


def _close(conn: Any, proc: subprocess.Popen[bytes], err: IO[bytes]) -> None:
    with contextlib.suppress(Exception):  # SUMO gone already: nothing to close
        conn.close(wait=False)  # (wait=True waits for SUMO without a bound)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err.close()
