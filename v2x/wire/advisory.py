"""A warning as the testbed carries it (``testbed_pb2.Advisory``, docs/PROTOCOL.md "Warnings"), made in one place
for everyone who raises one: a vehicle's on-board apps (v2x.agents.vehicle), a fleet's FCW (v2x.agents.fleet), the
platform's apps (v2x.agents.platform) and an outside stack through the SDK (v2x.sdk); and checked in one place
(:func:`advisory_problem`) by the world for every warning an Ack reports and by every receiver of an advisory
before it acts on it or echoes it."""

from __future__ import annotations

import math
from collections.abc import Container

from v2x.wire import testbed_pb2

MAX_FIGURE = 1e9  # ttc_s, figure, valid_until_s: finite and sane
MAX_TEXT = 256  # characters of an id or other short text in an Ack


def advisory(
    app: testbed_pb2.Application.ValueType,
    *,
    target_id: str,
    other_id: str,
    source_id: str,
    t_s: float,
    valid_s: float,
    severity: testbed_pb2.Severity.ValueType = testbed_pb2.SEVERITY_WARNING,
    ttc_s: float = 0.0,
    figure: float = 0.0,
    figure_name: str = "",
    conflict_type: str = "",
    trigger_sent_at_s: float | None = None,
) -> testbed_pb2.Advisory:
    """``app``'s warning for ``target_id`` about ``other_id``, raised by ``source_id`` at ``t_s`` and valid for
    ``valid_s`` after it; ``trigger_sent_at_s``: when the message whose delivery made the app raise it was sent
    (None, left out: a periodic evaluation)."""
    adv = testbed_pb2.Advisory(
        app=app,
        severity=severity,
        target_id=target_id,
        other_id=other_id,
        source_id=source_id,
        ttc_s=ttc_s,
        figure=figure,
        figure_name=figure_name,
        raised_at_s=t_s,
        valid_until_s=t_s + valid_s,
        conflict_type=conflict_type,
    )
    if trigger_sent_at_s is not None:
        adv.trigger_sent_at_s = trigger_sent_at_s
    return adv


def advisory_problem(adv: testbed_pb2.Advisory, *, end_s: float, figure_names: Container[str] | None) -> str:
    """What is wrong with the numbers and texts of one warning, or "": a ``raised_at_s`` outside 0..``end_s``, a
    ``trigger_sent_at_s`` after it, a ``ttc_s``, ``figure`` or ``valid_until_s`` not finite or beyond
    ``MAX_FIGURE``, a text longer than ``MAX_TEXT``, a ``figure_name`` not among ``figure_names`` (the names the
    apps report; None: not checked). Said as the rest of ``events[k]...``: ".ttc_s = nan"."""
    if not (math.isfinite(adv.raised_at_s) and -1e-6 <= adv.raised_at_s <= end_s):
        return f".raised_at_s = {adv.raised_at_s!r} (within 0..{end_s:g} s)"
    if adv.HasField("trigger_sent_at_s") and not (
        math.isfinite(adv.trigger_sent_at_s) and -1e-6 <= adv.trigger_sent_at_s <= adv.raised_at_s + 1e-6
    ):
        return f".trigger_sent_at_s = {adv.trigger_sent_at_s!r} (within 0..raised_at_s)"
    for name in ("ttc_s", "figure", "valid_until_s"):
        value = getattr(adv, name)
        if not (math.isfinite(value) and abs(value) <= MAX_FIGURE):
            return f".{name} = {value!r}"
    texts = (adv.target_id, adv.other_id, adv.source_id, adv.figure_name, adv.conflict_type)
    if any(len(s) > MAX_TEXT for s in texts):
        return f": text longer than {MAX_TEXT}"
    if figure_names is not None and adv.figure_name and adv.figure_name not in figure_names:
        # it names a key of the warning's event in the result: "type" or "t_s" there overwrote the event's
        # own (an attack review: one forged Ack crashed the run's report, another hid a warning)
        return f".figure_name {adv.figure_name[:64]!r} is not a figure an app reports"
    return ""


__all__ = ["MAX_FIGURE", "MAX_TEXT", "advisory", "advisory_problem"]
