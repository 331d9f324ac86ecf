"""Positioning noise (5G + Beidou) and network impairment profiles, sans-I/O.

Network profiles feed the fan-out (who hears a message, and when); positioning profiles turn each actor's
true position into the fix its receiver reports, with an honest 1-sigma accuracy. Numbers and sources:
docs/IMPAIRMENTS.md.
"""

from v2x.impair._gauss_markov import GaussMarkov
from v2x.impair._network import (
    NETWORK_PROFILES,
    TABLE_KNOTS,
    TABLE_TOP_QUANTILE,
    ConstantDelay,
    GammaDelay,
    HandoverGap,
    LogisticDelivery,
    NetworkLink,
    NetworkProfile,
    RetryDelivery,
    ShadowedPathLossDelivery,
    UniformDelay,
    network_link,
    network_profile,
)
from v2x.impair._positioning import STATE_NAMES, PositionFixes, PositioningModel, Zone
from v2x.impair._positioning_profiles import POSITIONING_PROFILES, PositioningProfile, positioning_profile

__all__ = [
    "NETWORK_PROFILES",
    "POSITIONING_PROFILES",
    "STATE_NAMES",
    "TABLE_KNOTS",
    "TABLE_TOP_QUANTILE",
    "ConstantDelay",
    "GammaDelay",
    "GaussMarkov",
    "HandoverGap",
    "LogisticDelivery",
    "NetworkLink",
    "NetworkProfile",
    "PositionFixes",
    "PositioningModel",
    "PositioningProfile",
    "RetryDelivery",
    "ShadowedPathLossDelivery",
    "UniformDelay",
    "Zone",
    "network_link",
    "network_profile",
    "positioning_profile",
]
