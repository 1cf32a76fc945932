"""Compile one kernel body as a serial and a parallel Numba dispatcher."""
import types

from numba import njit


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
    return njit(cache=True, **options)(body), njit(cache=True, parallel=True, **options)(twin)
