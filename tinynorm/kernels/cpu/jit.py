"""The one place CPU kernels are compiled: ``njit`` with tinynorm's defaults, and a kernel
body as a serial and a parallel Numba dispatcher.

Every CPU kernel takes NumPy's error model: a division by zero or the square root of a
negative number gives inf/NaN as NumPy and torch do, never a ZeroDivisionError from inside
the kernel (``Adam(eps=0)`` with a zero gradient, a norm with ``eps=0`` on a constant
channel). It also drops the zero checks of Python's model from the inner loops.
"""
import types

import numba

DEFAULTS = {"cache": True, "error_model": "numpy"}

REDUCE_MATH = {"reassoc", "contract"}
"""The only fast-math flags of the reduction loops: they let LLVM vectorize a float64 sum;
none of them assumes away NaN or Inf."""


def njit(*args, **options):
    """``numba.njit`` with :data:`DEFAULTS` (which ``options`` may override, but no kernel
    should override ``error_model``); used bare (``@njit``) or with options."""
    options = {**DEFAULTS, **options}
    if args and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def serial_and_parallel(body, **options):
    """Return ``(serial, parallel)`` cached dispatchers of ``body`` (``prange`` is ``range`` in the first).

    The parallel twin is a copy of the function under another qualified name:
    Numba's on-disk cache is keyed by file, qualified name and line, not by
    the ``parallel`` option, so two dispatchers of one function would share
    (and overwrite) one cache entry.
    """
    twin = types.FunctionType(body.__code__, body.__globals__, body.__name__ + "_parallel",
                              body.__defaults__, body.__closure__)
    twin.__qualname__ = body.__qualname__ + "_parallel"
    twin.__doc__ = body.__doc__
    return njit(**options)(body), njit(parallel=True, **options)(twin)
