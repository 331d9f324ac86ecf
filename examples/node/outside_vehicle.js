#!/usr/bin/env node
// An outside vehicle stack for v2x-testbed in Node.js, written from docs/PROTOCOL.md: mqtt.js for the
// broker, protobufjs loading proto/v2x/wire/*.proto at run time (proto/ is the import root: the files
// import "v2x/wire/...").
//
// It drives one external actor from where Control START says it starts (external_actors: centre of its
// box, heading, speed, box), at that speed; with --brake-at T --brake-rate A it brakes at A m/s^2 to a
// stop from simulation time T, and with --react-brake A it brakes so --reaction s (1) after the first
// warning it receives. Per tick: move to the tick's time, read the BSMs heard (logged once a second),
// send a BSM over PC5 (and the same bytes over Uu to the platform), Ack with the truth, echo the
// advisories addressed to it, log the collisions the world reports. A STOP counts only with the run's
// token (a STOP "world lost" is waited out). Exits on the STOP after the final tick (0), on a STOP before it or
// one with a reason ("run error: ...", "interrupted") after it (1), or when START does not come within
// --join-timeout s (3).
//
// Anyone may publish on an open broker, so it answers only the world's next tick: TickInput(0) first, then n + 1
// after n (in real time, START's `clock`, a later one once the world's clock can be there: an input can be lost),
// `final` only at START's n_ticks; TickInput(n) again gets the same bytes. It refuses and counts in every
// Ack's `rejected`: malformed (does not parse, another run), retained (the world never retains a TickInput),
// bad_tick, conflicting_input (a different TickInput for the tick it answered: answered as before). A Control it
// cannot parse or use is ignored.
//
//   node examples/node/outside_vehicle.js --broker mqtt://127.0.0.1:1883 --run demo-v2x --actor lead \
//       --brake-at 6 --brake-rate 6
"use strict";

const path = require("path");
const crypto = require("crypto");
const mqtt = require("mqtt");
const protobuf = require("protobufjs");

// ---- arguments ---------------------------------------------------------------------------------------
function parseArgs(argv) {
  const o = { broker: "mqtt://127.0.0.1:1883", run: null, actor: null, kind: "car", brakeAt: null,
    brakeRate: 6, reactBrake: 0, reaction: 1, joinTimeout: 60, protoDir: path.resolve(__dirname, "..", "..", "proto") };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--broker") o.broker = v;
    else if (k === "--run") o.run = v;
    else if (k === "--actor") o.actor = v;
    else if (k === "--kind") o.kind = v;
    else if (k === "--brake-at") o.brakeAt = Number(v);
    else if (k === "--brake-rate") o.brakeRate = Number(v);
    else if (k === "--react-brake") o.reactBrake = Number(v);
    else if (k === "--reaction") o.reaction = Number(v);
    else if (k === "--join-timeout") o.joinTimeout = Number(v);
    else if (k === "--proto") o.protoDir = path.resolve(v);
    else { console.error(`unknown argument ${k}`); process.exit(2); }
  }
  const id = /^[A-Za-z0-9_.-]{1,64}$/;
  if (!id.test(o.run || "") || !id.test(o.actor || "")) {
    console.error("--run and --actor are required: 1-64 of A-Z a-z 0-9 _ . -");
    process.exit(2);
  }
  return o;
}

// ---- the local frame: WGS84 geodetic <-> ECEF <-> ENU (docs/PROTOCOL.md "Local frame") -----------------
const A = 6378137.0, F = 1 / 298.257223563, E2 = F * (2 - F), RAD = Math.PI / 180;
function toEcef(latDeg, lonDeg, h) {
  const lat = latDeg * RAD, lon = lonDeg * RAD, s = Math.sin(lat), c = Math.cos(lat);
  const n = A / Math.sqrt(1 - E2 * s * s);
  return [(n + h) * c * Math.cos(lon), (n + h) * c * Math.sin(lon), (n * (1 - E2) + h) * s];
}
function toGeodetic(x, y, z) { // iterative (Bowring start, converges to < 1e-12 rad in a few steps)
  const lon = Math.atan2(y, x), p = Math.hypot(x, y);
  let lat = Math.atan2(z, p * (1 - E2)), h = 0;
  for (let i = 0; i < 10; i++) {
    const s = Math.sin(lat), n = A / Math.sqrt(1 - E2 * s * s);
    h = p / Math.cos(lat) - n;
    lat = Math.atan2(z, p * (1 - E2 * n / (n + h)));
  }
  return [lat / RAD, lon / RAD, h];
}
class LocalFrame {
  constructor(lat0, lon0, h0) {
    this.h0 = h0; this.o = toEcef(lat0, lon0, h0);
    const la = lat0 * RAD, lo = lon0 * RAD;
    this.e = [-Math.sin(lo), Math.cos(lo), 0];
    this.n = [-Math.sin(la) * Math.cos(lo), -Math.sin(la) * Math.sin(lo), Math.cos(la)];
  }
  toWgs84(x, y) {
    const p = [0, 1, 2].map((k) => this.o[k] + x * this.e[k] + y * this.n[k]);
    return toGeodetic(...p);
  }
  toLocal(latDeg, lonDeg) { // at the origin's height: x = e . (P - O), y = n . (P - O)
    const p = toEcef(latDeg, lonDeg, this.h0), d = [0, 1, 2].map((k) => p[k] - this.o[k]);
    const dot = (u) => u[0] * d[0] + u[1] * d[1] + u[2] * d[2];
    return [dot(this.e), dot(this.n)];
  }
}

// ---- units (docs/PROTOCOL.md "Units on the wire": round to nearest, clamp; an accuracy rounds up) -----------
const num = (v) => (typeof v === "number" ? v : v.toNumber()); // uint64/sint64 may decode as Long
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, Math.round(v)));
const units = {
  latlon: (deg) => Math.round(deg * 1e7),
  speed: (mps) => clamp(mps / 0.02, 0, 8190),
  heading: (deg) => { const r = Math.round((((deg % 360) + 360) % 360) / 0.0125); return r >= 28800 ? 0 : r; },
  accel: (mps2) => clamp(mps2 / 0.01, -2000, 2000),
  sigma: (m) => (m == null ? 255 : Math.min(254, Math.max(0, Math.ceil(m / 0.05 - 1e-9)))), // never better than the truth
  secMark: (epochMs, timeUs) => Math.floor((epochMs * 1000 + timeUs) / 1000) % 60000,
};
// PositionConfidence: the smallest bound >= r95 (docs/PROTOCOL.md "The BSM"), 0 = unavailable
const CONF_BOUNDS = [500, 200, 100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01];
function posConfidence(r95) {
  if (r95 == null) return 0;
  for (let code = CONF_BOUNDS.length; code >= 1; code--) if (r95 <= CONF_BOUNDS[code - 1]) return code;
  return 0;
}
const VEHICLE_CLASS = { car: 10, truck: 20, bus: 23, emergency: 60, pedestrian: 82, cyclist: 85 };

// ---- the vehicle -----------------------------------------------------------------------------------------
class Car {
  constructor(start, brakeAt, brakeRate) {
    Object.assign(this, { x0: start.x_m || 0, y0: start.y_m || 0, v0: start.speed_mps || 0,
      heading: start.heading_deg || 0, brakeAt, brakeRate });
  }
  at(t) { // exact: constant speed, then constant deceleration to a stop
    let s, v, a = 0;
    const tb = this.brakeAt == null ? Infinity : this.brakeAt;
    if (t < tb - 1e-9) { s = this.v0 * t; v = this.v0; }
    else {
      const dt = t - tb, stop = this.v0 / this.brakeRate;
      s = this.v0 * tb + (dt < stop ? this.v0 * dt - 0.5 * this.brakeRate * dt * dt : this.v0 * stop / 2);
      v = Math.max(0, this.v0 - this.brakeRate * dt);
      a = v > 0 ? -this.brakeRate : 0;
    }
    const yaw = (90 - this.heading) * RAD;
    return { x: this.x0 + s * Math.cos(yaw), y: this.y0 + s * Math.sin(yaw), v, a, yaw, heading: this.heading };
  }
}

// ---- main --------------------------------------------------------------------------------------------------
async function main() {
  const o = parseArgs(process.argv.slice(2));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(o.protoDir, target);
  root.loadSync(["v2x/wire/testbed.proto", "v2x/wire/frame.proto"], { keepCase: true });
  const T = (name) => root.lookupType(`v2x.wire.${name}`);
  const [Hello, Control, TickInput, Envelope, Ack, MessageFrame] =
    ["Hello", "Control", "TickInput", "Envelope", "Ack", "MessageFrame"].map(T);
  const LINK_PC5 = 1, LINK_UU = 2, START = 1, STOP = 2, CLOCK_REALTIME = 2;
  const me = o.actor, run = o.run, topic = (k) => `v2x/${run}/${k}/${me}`;
  const bsmId = crypto.createHash("sha256").update(me, "utf8").digest().subarray(0, 8);
  const log = (t, msg) => console.log(`[${me}${t == null ? "" : ` t=${t.toFixed(1)}s`}] ${msg}`);
  const sha8 = (id) => crypto.createHash("sha256").update(id, "utf8").digest().subarray(0, 8).toString("hex");
  let names = {}; // BSM id (hex) -> actor id, for the log
  const heard = {}; // actor -> [x, y] of its latest BSM
  let warnedAt = null;

  const client = mqtt.connect(o.broker, { clientId: `node-${me}-${crypto.randomBytes(3).toString("hex")}`,
    clean: true, reconnectPeriod: 500 });
  let finalDone = false, start = null, frame = null, epochMs = 0, car = null, last = null, seq = 0, msgCnt = 0, done = false;
  let t0 = null; // real time: the earliest the world's tick 0 can have gone out (ms, performance.now()), from START
  let restAt = null; // after a collision: at rest where it touched, for good (docs/PROTOCOL.md, "Collisions")
  const rejected = {}; // what it refused, by reason (sent in every Ack)
  // STARTs published (not retained) while waiting for the first tick: the world's are the same bytes each time,
  // so two different ones mean someone else publishes Controls, and which is the world's cannot be told
  const liveStarts = new Set();
  const reject = (reason, why) => {
    rejected[reason] = (rejected[reason] || 0) + 1;
    if (rejected[reason] <= 5) log(null, `rejected (${reason}): ${why}`);
  };
  const decode = (type, payload) => { try { return type.decode(payload); } catch (err) { return null; } };
  const hello = Hello.encode({ actor_id: me, kind: o.kind, software: "examples/node 1.0", protocol_version: 1 }).finish();
  const helloTimer = setInterval(() => { if (last == null) client.publish(`v2x/${run}/join/${me}`, Buffer.from(hello)); }, 1000);
  const joinTimer = setTimeout(() => { if (!start) { log(null, "no START"); finish(3); } }, o.joinTimeout * 1000);
  function finish(code) { clearInterval(helloTimer); clearTimeout(joinTimer); done = true; client.end(false, () => process.exit(code)); }

  client.on("connect", () => {
    // Nagle off (docs/PROTOCOL.md "Transport"): mqtt.js leaves it on; the socket is new after every reconnect
    if (client.stream && typeof client.stream.setNoDelay === "function") client.stream.setNoDelay(true);
    client.subscribe([`v2x/${run}/in/${me}`], { qos: 0 });
    client.subscribe([`v2x/${run}/control`], { qos: 1 });
    if (last == null) client.publish(`v2x/${run}/join/${me}`, Buffer.from(hello));
  });
  const pending = [];
  client.on("message", (t, payload, packet) => {
    if (done) return;
    if (t.endsWith("/control")) {
      if (!payload.length) return; // a cleared retained Control
      const c = decode(Control, payload);
      if (c == null || c.run_id !== run) return;
      if (c.command === START && last == null) { // a later START replaces an earlier (stale) one
        const epoch = Date.parse(c.epoch_utc);
        if (Number.isNaN(epoch) || epoch < 0 || !(c.tick_us > 0)) { log(null, `ignoring a START that cannot be used (epoch ${c.epoch_utc})`); return; }
        start = c;
        t0 = performance.now(); // the world starts its clock right after its START
        if (!(packet && packet.retain)) liveStarts.add(Buffer.from(payload).toString("base64"));
        names = Object.fromEntries((c.actor_ids || []).map((a) => [sha8(a), a]));
        const mine = (c.external_actors || []).find((a) => a.actor_id === me) || {};
        frame = new LocalFrame(c.origin_lat_deg, c.origin_lon_deg, c.origin_alt_m);
        epochMs = epoch;
        car = new Car(mine, o.brakeAt, o.brakeRate);
        Object.assign(car, { length: mine.length_m || 5, width: mine.width_m || 2, height: mine.height_m || 1.6 });
        log(null, `START: scenario ${c.scenario_id}, start (${car.x0.toFixed(2)}, ${car.y0.toFixed(2)}) heading ${car.heading}`);
        while (pending.length) onTick(pending.shift(), performance.now());
      } else if (c.command === STOP && last != null) {
        // Only this run's world may stop it: a STOP without START's token is someone else's.
        if ((c.token || "") !== (start.token || "")) { log(null, `ignoring a STOP without this run's token`); return; }
        if (c.reason === "world lost") { log(null, "STOP world lost: waiting for the world to come back"); return; }
        if (finalDone && !c.reason) { log(null, "STOP: the run is over"); finish(0); return; }
        // "run error: ..." (the run failed), "interrupted": not a normal end, even after the final tick
        log(null, `STOP ${finalDone ? "after" : "before"} the final tick: ${c.reason}`);
        finish(1);
      }
      return;
    }
    if (packet && packet.retain) { reject("retained", `a retained message on ${t}`); return; } // never the world's
    const ti = decode(TickInput, payload);
    if (ti == null || ti.run_id !== run) { reject("malformed", `${payload.length} bytes that are no TickInput of ${run}`); return; }
    if (!start) { pending.push(ti); if (pending.length > 16) pending.shift(); return; } // keep the newest only
    onTick(ti, performance.now());
  });

  function onTick(ti, now) {
    if (done) return;
    if (last == null && liveStarts.size > 1) { // refuse rather than be steered (docs/SECURITY.md; run with --secure)
      log(null, `refused: ${liveStarts.size} different STARTs of run ${run} came while waiting for the first tick: someone publishes Controls on this broker`);
      finish(1);
      return;
    }
    const tick = num(ti.tick), timeUs = num(ti.time_us);
    if (last && tick === last.tick) { // the world asks again: the same bytes (a different input: counted)
      const again = Buffer.from(TickInput.encode(ti).finish());
      if (!again.equals(last.input)) reject("conflicting_input", `a different TickInput for tick ${tick}`);
      for (const [tp, p] of last.out) client.publish(tp, p);
      return;
    }
    const expected = last ? last.tick + 1 : 0, nTicks = (start.protocol_version || 0) >= 1 ? num(start.n_ticks) : null;
    // In real time (START's clock) an input can be lost: a later tick m is taken once the world's clock can be
    // there, no earlier than t0 + (m - 1) x tick (a forged far tick comes too early); never past n_ticks
    // (docs/PROTOCOL.md checklist item 9)
    const tickMs = num(start.tick_us) / 1000;
    let latest = start.clock === CLOCK_REALTIME ? Math.max(expected, Math.floor((now - t0) / tickMs) + 1) : expected;
    if (nTicks != null) latest = Math.min(latest, nTicks);
    if (tick < expected || tick > latest || (nTicks != null && !!ti.final !== (tick === nTicks))) { // not the world's
      reject("bad_tick", `TickInput(${tick}, final=${!!ti.final}) when tick ${expected} is next`);
      return;
    }
    if (tick > expected) log(null, `tick ${tick} after ${expected - 1}: the inputs between were lost (real time)`);
    t0 = Math.min(t0, now - tick * tickMs);
    const t = timeUs / 1e6, g = ti.gnss || {};
    const echoes = [];
    for (let k = 0; k < (ti.envelopes || []).length; k++) { // what was heard: BSMs, advisories to me
      try {
        const e = Envelope.decode(ti.envelopes[k]), f = MessageFrame.decode(e.frame);
        if (f.bsm && f.bsm.pos && f.bsm.pos.lat !== 900000001) {
          const who = names[Buffer.from(f.bsm.id).toString("hex")] || e.sender_id;
          heard[who] = frame.toLocal(f.bsm.pos.lat / 1e7, f.bsm.pos.lon / 1e7);
        } else if (f.advisory && f.advisory.target_id === me) {
          // echoed in the Ack (only then does it count) at its delivery time, when the driver got it, the rest as
          // it came (docs/PROTOCOL.md "Warnings": the platform's raised_at_s is earlier than the driver could know)
          f.advisory.raised_at_s = num(ti.rx_time_us[k]) / 1e6;
          echoes.push(f.advisory);
          log(t, `advisory from ${e.sender_id}: app ${f.advisory.app} severity ${f.advisory.severity} about ${f.advisory.other_id}`);
        }
      } catch (err) { /* malformed: ignored */ }
    }
    if (echoes.some((a) => a.severity >= 3) && warnedAt == null && o.reactBrake > 0) { // 3 = SEVERITY_WARNING
      warnedAt = t;
      const at = t + o.reaction;
      if (car.brakeAt == null || at < car.brakeAt) {
        Object.assign(car, { brakeAt: at, brakeRate: o.reactBrake });
        log(t, `warned: braking at ${o.reactBrake} m/s^2 from t=${at.toFixed(1)} s`);
      }
    }
    if (restAt == null && (ti.collisions || []).length) restAt = ti.collisions[0].t_s;
    const s = restAt == null ? car.at(t) : { ...car.at(restAt), v: 0, a: 0 };
    if (tick % 10 === 0) {
      const near = Object.entries(heard).map(([who, [x, y]]) => `${who} ${Math.hypot(x - s.x, y - s.y).toFixed(1)} m`);
      log(t, `heard: ${near.join(", ") || "nobody"}`);
    }
    const fix = g.available ? [s.x + g.east_error_m, s.y + g.north_error_m] : [s.x, s.y];
    const [lat, lon] = frame.toWgs84(...fix);
    const sigma = g.available ? g.sigma_major_m : null;
    const bsm = {
      msg_cnt: msgCnt++ % 128, id: bsmId, sec_mark: units.secMark(epochMs, timeUs),
      pos: { lat: units.latlon(lat), lon: units.latlon(lon), elevation: Math.round(start.origin_alt_m / 0.1) },
      accuracy: { semi_major: units.sigma(sigma), semi_minor: units.sigma(g.available ? g.sigma_minor_m : null), orientation: 65535 },
      pos_confidence: { pos: posConfidence(sigma == null ? null : 2.448 * sigma), elevation: 0 },
      trans_state: 2, speed: units.speed(s.v), heading: units.heading(s.heading), angle: 127,
      accel_set: { long: units.accel(s.a), lat: 0, vert: -127, yaw: 0 },
      brakes: { brake_pedal: s.a < 0 ? 2 : 1, abs: 2, traction: 2, scs: 2 },
      size: { width: Math.round(car.width * 100), length: Math.round(car.length * 100), height: Math.round(car.height / 0.05) },
      vehicle_class: VEHICLE_CLASS[o.kind] || 10,
      // hardBraking (bit 7) at 0.4 g; a wreck (after a collision) keeps hazardLights (bit 0) and disabledVehicle
      // (bit 11) set, and the lights' hazard signal (bit 4), for good (docs/PROTOCOL.md, "Collisions")
      safety_ext: {
        events: (s.a <= -3.92266 ? 1 << 7 : 0) | (restAt != null ? (1 << 0) | (1 << 11) : 0),
        path_prediction_radius: 32767,
        lights: restAt != null ? 1 << 4 : 0,
      },
    };
    const frameBytes = MessageFrame.encode({ bsm }).finish();
    const out = [];
    const env = (link, dest) => Envelope.encode({ sender_id: me, seq: ++seq, tick, tx_time_us: timeUs, link,
      dest_ids: dest, frame: frameBytes }).finish();
    out.push([topic("tx"), Buffer.from(env(LINK_PC5, []))]);
    if (start.platform_id) out.push([topic("tx"), Buffer.from(env(LINK_UU, [start.platform_id]))]);
    for (const c of ti.collisions || []) log(t, `collided with ${c.other_id} at t=${c.t_s.toFixed(1)} s: at rest`);
    const c = Math.cos(s.yaw), sn = Math.sin(s.yaw);
    const ack = Ack.encode({ actor_id: me, tick, tx_count: out.length, events: echoes, rejected: { ...rejected },
      truth: { x_m: s.x, y_m: s.y, vx_mps: s.v * c, vy_mps: s.v * sn, ax_mps2: s.a * c, ay_mps2: s.a * sn,
        heading_deg: s.heading, speed_mps: s.v, accel_mps2: s.a, lane: "" } }).finish();
    out.push([topic("ack"), Buffer.from(ack)]);
    for (const [tp, p] of out) client.publish(tp, p);
    last = { tick, out, input: Buffer.from(TickInput.encode(ti).finish()) };
    // After the final tick: answer the world's re-sends of it (a broker restart may have lost the answer) until
    // its STOP, or 70 s (the world gives up after 60 s)
    if (ti.final) { finalDone = true; log(t, `final tick ${tick}: done`); setTimeout(() => finish(0), 70000); }
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
