"""A warning as the testbed carries it (``testbed_pb2.Advisory``, docs/PROTOCOL.md "Warnings"), made in one place
for everyone who raises one: a vehicle's on-board apps (v2x.agents.vehicle), a fleet's FCW (v2x.agents.fleet), the
platform's apps (v2x.agents.platform) and an outside stack through the SDK (v2x.sdk)."""

from __future__ import annotations

from v2x.wire import testbed_pb2


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


__all__ = ["advisory"]
