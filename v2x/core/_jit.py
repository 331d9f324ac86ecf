"""How the core's kernels run: compiled by numba for large worlds, as plain Python for small ones.

The kernels (``_kernels``, ``_traffic_kernels``) are plain Python functions marked with :func:`jit` or
:func:`jit_inline`; the module keeps them as written. :func:`kernel` hands a caller the version to run:

* for a world of more than :data:`SMALL_WORLD` actors, a twin compiled by numba in nopython mode, cached on
  disk (``cache=True``: the first process after a change compiles, later ones load the machine code),
  single-threaded, without fastmath (bit-for-bit deterministic) and with numpy's error model (division
  by zero gives inf or nan as in numpy instead of raising);
* for a small world, the function itself, run by the interpreter on the same arrays under numpy's error
  state for the same IEEE results (``np.errstate``: no warnings for the unsigned hash arithmetic that
  wraps, or for a division by zero of array elements).

A scenario's handful of actors costs the interpreter less per tick than the kernels cost to compile (about
18 s of CPU on a cold cache), so a run of a pilot scenario never waits for numba; a 10 000-vehicle world
compiles once and is fast from then on. Both give the same numbers: the kernels do their arithmetic in
numpy scalars and ``math`` functions, which numba maps to the same IEEE operations and libm calls (the
core's tests run both and compare). numba itself is imported only when a twin is first compiled.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import numpy as np

__all__ = [
    "SMALL_WORLD",
    "always_compiled",
    "compiled",
    "compiles",
    "interpreted",
    "jit",
    "jit_inline",
    "kernel",
    "twins",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Worlds of up to this many actors (or grid members, or vehicles) run the kernels interpreted.
SMALL_WORLD = 32

_MARK = "__v2x_kernel__"  # attribute on a marked function: its numba inline option
_TWINS: dict[str, dict[str, Any]] = {}  # module name -> namespace of compiled twins (built on first use)
_forced = [False]  # inside always_compiled()


def jit(fn: F) -> F:
    """Mark ``fn`` as a kernel: compiled (``numba.njit(cache=True, error_model="numpy")``) for large
    worlds, interpreted for small ones. Returns ``fn`` itself, with its signature."""
    setattr(fn, _MARK, "never")
    return fn


def jit_inline(fn: F) -> F:
    """Like :func:`jit`; the compiled twin is inlined into its compiled callers at numba IR level (for
    small helpers called per element: passing arrays to a call that is not inlined costs atomic reference
    counting each time)."""
    setattr(fn, _MARK, "always")
    return fn


def twins(module_name: str) -> dict[str, Any]:
    """The compiled namespace of a kernel module: its globals, with every marked function replaced by its
    numba twin, whose own globals are this namespace (so compiled kernels call compiled helpers)."""
    ns = _TWINS.get(module_name)
    if ns is None:
        import numba

        module = sys.modules[module_name]
        ns = dict(vars(module))
        for name, obj in vars(module).items():
            inline = getattr(obj, _MARK, None)
            if inline is None or getattr(obj, "__module__", None) != module_name:
                continue
            fn = types.FunctionType(obj.__code__, ns, obj.__name__, obj.__defaults__, obj.__closure__)
            fn.__qualname__ = obj.__qualname__
            fn.__doc__ = obj.__doc__
            ns[name] = numba.njit(cache=True, error_model="numpy", fastmath=False, inline=inline)(fn)
        _TWINS[module_name] = ns
    return ns


def compiled(fn: F) -> F:
    """The numba twin of the kernel ``fn`` (compiled, or loaded from the cache, on its first call)."""
    return cast(F, twins(fn.__module__)[fn.__name__])


def interpreted(fn: F) -> F:
    """``fn`` run by the interpreter under numpy's error state (see the module docstring)."""

    def call(*args: Any) -> Any:
        with _quiet():
            return fn(*args)

    return cast(F, call)


def compiles(n: int) -> bool:
    """Whether a world of ``n`` actors runs the kernels compiled (see :data:`SMALL_WORLD`, :func:`always_compiled`)."""
    return n > SMALL_WORLD or _forced[0]


def kernel(fn: F, n: int) -> F:
    """The version of the kernel ``fn`` to run for a world of ``n`` actors (see :data:`SMALL_WORLD`)."""
    if getattr(fn, _MARK, None) is None:
        raise TypeError(f"{fn.__name__} is not marked with @jit")
    return compiled(fn) if compiles(n) else interpreted(fn)


@contextlib.contextmanager
def always_compiled() -> Iterator[None]:
    """Within this block every kernel runs compiled, whatever the world's size (the warm-up compiles the
    kernels on a two-car world; tests compare the two ways on the same worlds)."""
    before = _forced[0]
    _forced[0] = True
    try:
        yield
    finally:
        _forced[0] = before


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with np.errstate(all="ignore"):
        yield
