"""GLOSA advice and the driver's signal and speed rules, by hand (no broker)."""

from __future__ import annotations

import math

import pytest

from v2x.apps.driver import STOP_GAP_M, YELLOW_MAX_STOP_MPS2, Driver, SignalView
from v2x.apps.glosa import speed_advice
from v2x.apps.host import Host
from v2x.apps.thresholds import DEFAULTS
from v2x.wire.map_spat import GREEN, RED, YELLOW, Approach, Interval

STOP_X = -math.sqrt(12.0**2 - 1.75**2)
EB = Approach("x1", 1, "eb", [(-400.0, -1.75), (STOP_X, -1.75)], 3.5, 1, 50 / 3.6)
RED_UNTIL_14 = {(1, 1): [Interval(RED, -11.0, 14.0), Interval(GREEN, 14.0, 34.0), Interval(YELLOW, 34.0, 37.0)]}
GREEN_UNTIL_5 = {(1, 1): [Interval(GREEN, -15.0, 5.0), Interval(YELLOW, 5.0, 8.0), Interval(RED, 8.0, 33.0)]}


def _host(front_to_line: float, v: float = 13.89, sigma: float = 0.05) -> Host:
    return Host(STOP_X - front_to_line - 2.5, -1.75, 0.0, v, 0.0, 5.0, sigma)


# -- GLOSA ---------------------------------------------------------------------------------------------
def test_slow_down_to_reach_the_line_one_second_after_the_switch() -> None:
    adv = speed_advice(_host(115.0), [EB], RED_UNTIL_14, 0.0, DEFAULTS)
    assert adv is not None and adv.reason == "slow-down" and adv.green_at_s == 14.0
    assert adv.speed_mps == pytest.approx(115.0 / 15.0)  # 14 s to the switch + 1 s margin
    assert adv.distance_m == pytest.approx(115.0)


def test_no_slow_down_below_the_minimum_speed() -> None:
    # 60 m with 14 s to go: 60 / 15 = 4 m/s < 5 m/s -> it will have to stop; no advice
    assert speed_advice(_host(60.0), [EB], RED_UNTIL_14, 0.0, DEFAULTS) is None


def test_no_advice_when_it_arrives_on_green_anyway() -> None:
    assert speed_advice(_host(40.0), [EB], GREEN_UNTIL_5, 0.0, DEFAULTS) is None  # 2.9 s < 5 s of green
    assert speed_advice(_host(140.0), [EB], RED_UNTIL_14, 4.0, DEFAULTS) is None  # arrives at 14.08 s


def test_speed_up_within_the_factor_when_that_beats_the_end_of_green() -> None:
    # 60 m at 10 m/s: 6 s > 5 s of green left; at 1.1 x 50 km/h = 15.28 m/s: 3.9 s -> speed up
    adv = speed_advice(_host(60.0, v=10.0), [EB], GREEN_UNTIL_5, 0.0, DEFAULTS)
    assert adv is not None and adv.reason == "speed-up"
    assert adv.speed_mps == pytest.approx(1.1 * 50 / 3.6)
    # 80 m: even at 15.28 m/s it takes 5.2 s -> no advice
    assert speed_advice(_host(80.0, v=10.0), [EB], GREEN_UNTIL_5, 0.0, DEFAULTS) is None


def test_glosa_range_and_accuracy() -> None:
    assert speed_advice(_host(151.0), [EB], RED_UNTIL_14, 0.0, DEFAULTS) is None
    assert speed_advice(_host(115.0, sigma=1.0), [EB], RED_UNTIL_14, 0.0, DEFAULTS) is None


# -- the driver --------------------------------------------------------------------------------------------
def _driver(*, sees_signals: bool = True, follows_advice: bool = True) -> Driver:
    return Driver(reaction_s=1.0, brake_mps2=6.0, sees_signals=sees_signals, follows_advice=follows_advice)


def test_stops_for_a_red_at_arrival_once_comfortable_braking_is_needed() -> None:
    d = _driver()
    far = SignalView(80.0, RED, RED)  # 13.89^2 / 2 / 79 = 1.22 m/s^2 < 2: not yet
    assert d.signal_accel(13.89, far) is None
    near = SignalView(45.0, RED, RED)  # 13.89^2 / 2 / 44 = 2.19 m/s^2
    assert d.signal_accel(13.89, near) == pytest.approx(-(13.89**2) / (2 * (45.0 - STOP_GAP_M)))
    assert d.signal_accel(0.2, SignalView(1.2, RED, RED)) == -6.0  # waiting at the line
    assert d.signal_accel(13.89, SignalView(45.0, RED, GREEN)) is None  # the countdown says green by then


def test_yellow_dilemma_zone_and_glare() -> None:
    d = _driver()
    # yellow now, red at arrival: stop if it takes <= 3 m/s^2, else go through
    easy = SignalView(40.0, YELLOW, RED)  # 2.47 m/s^2
    hard = SignalView(30.0, YELLOW, RED)  # 3.33 m/s^2
    assert easy.distance_m > 13.89**2 / (2 * YELLOW_MAX_STOP_MPS2) + STOP_GAP_M > hard.distance_m
    assert d.signal_accel(13.89, easy) == pytest.approx(-(13.89**2) / (2 * 39.0))
    assert d.signal_accel(13.89, hard) is None
    assert d.signal_accel(13.89, SignalView(20.0, YELLOW, YELLOW)) is None  # arrives on yellow
    assert _driver(sees_signals=False).signal_accel(13.89, SignalView(45.0, RED, RED)) is None


def test_advice_is_followed_while_fresh_and_tracked_comfortably() -> None:
    d = _driver()
    d.on_advice(1.0, 7.5)
    assert d.target_speed(1.4, 13.89) == 7.5
    assert d.target_speed(1.6, 13.89) == 13.89  # stale after 0.5 s
    assert d.track(13.89, 7.5) == -2.0  # (7.5 - 13.89) / 2 s = -3.2, limited to the comfortable 2 m/s^2
    assert d.track(7.0, 7.5) == pytest.approx(0.25)
    assert d.track(0.0, 13.89) == 1.5
    ignorant = _driver(follows_advice=False)
    ignorant.on_advice(1.0, 7.5)
    assert ignorant.target_speed(1.2, 13.89) == 13.89


def test_warnings_beat_everything() -> None:
    d = _driver()
    d.on_warning(2.0, "fcw")
    d.on_warning(2.5, "icw")  # the first one decides
    assert d.command(2.9) is None and d.command(3.0) == -6.0 and d.cause == "fcw"
