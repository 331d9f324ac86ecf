"""``python -m v2x``: the same as the ``v2x`` command."""

import sys

from v2x.cli import main

if __name__ == "__main__":  # not when a worker process (v2x.run.workers, spawn) imports it as __mp_main__
    sys.exit(main())
