"""The ``v2x`` command line.

Exit codes (stable, for CI): 0 every expectation held; 1 an expectation failed; 2 bad input (scenario file,
arguments); 3 the run could not complete (broker unreachable, an agent stopped answering).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from v2x import __version__
from v2x.argtypes import EXIT_BROKEN_PIPE
from v2x.bench.cli import register as register_bench
from v2x.impair.cli import register as register_impair
from v2x.run.check import register as register_check
from v2x.run.cli import register as register_run
from v2x.run.docs import register as register_docs
from v2x.run.secure import register as register_secure
from v2x.run.sweep import register as register_sweep
from v2x.text import escape_log_messages


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="v2x",
        description="V2X vehicle-road-cloud testbed emulator.",
        epilog="Exit codes: 0 all expectations held, 1 an expectation failed, 2 bad input, 3 run error.",
    )
    parser.add_argument("--version", action="version", version=f"v2x-testbed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_run(sub)
    register_check(sub)
    register_sweep(sub)
    register_docs(sub)
    register_secure(sub)
    register_bench(sub)
    register_impair(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    escape_log_messages()  # what the wire and the files say cannot forge a log line or redraw the terminal
    handler = args.handler
    try:
        code: int = handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout went away (``v2x list | head -1``): stop quietly, as a Unix tool does, instead of a
        # traceback. stdout goes to /dev/null first, so that the interpreter's own flush at exit does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
