"""A scenario with its positioning and network profiles swapped: ``--positioning`` / ``--network`` of
``v2x run`` and ``v2x sweep`` (one implementation, so that a seed a sweep found failing runs the same with
``v2x run``).

``--positioning PROFILE`` makes PROFILE the scenario's positioning (the actors' default) and clears each
actor's own (background flows keep theirs); ``--network PROFILE`` (repeatable) replaces the scenario's profile
of the link PROFILE is for (pc5, uu or wired), one per link. The profiles are those of ``v2x impair list``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from v2x.impair import NETWORK_PROFILES, POSITIONING_PROFILES
from v2x.scenario.model import Scenario

__all__ = ["LINK_OF_KIND", "add_profile_options", "profile_args", "with_profiles"]

LINK_OF_KIND = {"sidelink": "pc5", "cellular": "uu", "wired": "wired"}  # a network profile's kind -> its link


def with_profiles(scenario: Scenario, positioning: str | None, networks: Sequence[str]) -> Scenario:
    """``scenario`` with its positioning and network profiles swapped as asked; ValueError naming an unknown
    profile or two profiles of one link."""
    if positioning is None and not networks:
        return scenario
    update: dict[str, object] = {}
    if positioning is not None:
        if positioning not in POSITIONING_PROFILES:
            raise ValueError(f"unknown positioning profile {positioning!r}; see 'v2x impair list'")
        update["positioning"] = positioning
        update["actors"] = [a.model_copy(update={"positioning": None}) for a in scenario.actors]
    network = scenario.network
    given: dict[str, str] = {}
    for name in networks:
        profile = NETWORK_PROFILES.get(name)
        if profile is None:
            raise ValueError(f"unknown network profile {name!r}; see 'v2x impair list'")
        link = LINK_OF_KIND[profile.kind]
        if link in given and given[link] != name:  # (the last one won, silently, while both were listed)
            raise ValueError(f"--network {given[link]!r} and {name!r} are both profiles of the {link} link: give one")
        given[link] = name
        network = network.model_copy(update={link: name})
    update["network"] = network
    return scenario.model_copy(update=update)


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """``--positioning PROFILE`` and ``--network PROFILE`` (repeatable), as ``with_profiles`` takes them."""
    parser.add_argument(
        "--positioning",
        metavar="PROFILE",
        help="every actor's positioning profile instead of the scenario's (background flows keep theirs; "
        "'v2x impair list')",
    )
    parser.add_argument(
        "--network",
        metavar="PROFILE",
        action="append",
        help="a link's profile instead of the scenario's, for the link the profile is for (pc5, uu or wired; "
        "repeatable, one per link; 'v2x impair list')",
    )


def profile_args(positioning: str | None, networks: Sequence[str]) -> str:
    """The options that swap these profiles, as a command line gives them ('' for none)."""
    return " ".join([*([f"--positioning {positioning}"] if positioning else []), *(f"--network {n}" for n in networks)])
