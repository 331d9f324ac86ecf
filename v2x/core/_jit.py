"""The ``jit`` decorators every compiled kernel of the core uses (the kernels live in ``_kernels``).

Kernels are compiled with numba in nopython mode, cached on disk (``cache=True``: the first run after a
change compiles, later processes load the machine code), single-threaded, without fastmath (results are
bit-for-bit deterministic) and with numpy's error model (division by zero gives inf or nan as in numpy
instead of raising), so they follow the same IEEE rules as the formulas in docs/CORE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

__all__ = ["jit", "jit_inline"]

F = TypeVar("F", bound=Callable[..., Any])


def jit(fn: F) -> F:
    """``numba.njit(cache=True, error_model="numpy")``; typed so that mypy keeps the signature."""
    return cast(F, numba.njit(cache=True, error_model="numpy", fastmath=False)(fn))


def jit_inline(fn: F) -> F:
    """Like :func:`jit`, inlined into its callers at numba IR level. For small helpers called per
    element: passing arrays to a call that is not inlined costs atomic reference counting each time."""
    return cast(F, numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")(fn))
