"""Positioning noise (5G + Beidou) and network impairment profiles, sans-I/O.

Network profiles feed the fan-out (who hears a message, and when); positioning profiles turn each actor's
true position into the fix its receiver reports, with an honest 1-sigma accuracy. Numbers and sources:
docs/IMPAIRMENTS.md.
"""

from v2x.impair._network import (
    NETWORK_PROFILES,
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

__all__ = [
    "NETWORK_PROFILES",
    "ConstantDelay",
    "GammaDelay",
    "HandoverGap",
    "LogisticDelivery",
    "NetworkLink",
    "NetworkProfile",
    "RetryDelivery",
    "ShadowedPathLossDelivery",
    "UniformDelay",
    "network_link",
    "network_profile",
]
