"""``v2x bench core`` (work in progress)."""

from __future__ import annotations

import argparse
from typing import TextIO


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    print("v2x bench core: not implemented yet", file=err)
    return 3
