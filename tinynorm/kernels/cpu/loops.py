"""Loops and leaves shared by the CPU norm kernels (the traversals are named in the package doc).

A prange kernel body cuts a flat array of E values into ``nchunks`` equal runs (run ``t`` is
``[E*t // nchunks, E*(t+1) // nchunks)``, cuts falling anywhere) and walks its run with
:func:`walk_planes` or :func:`walk_periods`, which call ``work(args, pos, end, k)`` once per
contiguous piece ``[pos, end)``. ``work`` is an ``@njit(forceinline=True)`` function that
unpacks the tuple ``args`` and runs a vectorized leaf over the piece; Numba compiles one walk per
``work``, so the walk is written once and each kernel keeps its own inner loop.

The walks are ``inline="always"`` (inlined by Numba): a dispatcher passed to a compiled function
would make every caller uncacheable. ``work`` is inlined by LLVM instead (``forceinline``): inside
a prange body, Numba's own inlining loses the array writes of ``work``, and an uninlined call per
plane costs more than a short plane's work.
"""
import numpy as np

from .jit import REDUCE_MATH, njit


@njit(inline="always")
def walk_planes(work, args, E, t, nchunks, S, C):
    """Run ``t`` plane by plane, planes of S values whose index cycles through C channels:
    ``work(args, pos, end, c)`` per piece of plane (channel ``c``)."""
    e1 = E * (t + 1) // nchunks
    pos = E * t // nchunks
    p = pos // S
    c = p % C
    pend = (p + 1) * S
    while pos < e1:
        end = min(e1, pend)
        work(args, pos, end, c)
        pos = end
        pend += S
        c += 1
        if c == C:
            c = 0


@njit(inline="always")
def walk_periods(work, args, E, t, nchunks, L):
    """Run ``t`` period by period, the array a sequence of rows of L columns:
    ``work(args, pos, end, j)`` per piece of row, ``j`` the column of ``pos``."""
    e1 = E * (t + 1) // nchunks
    pos = E * t // nchunks
    j = pos % L
    while pos < e1:
        end = min(e1, pos + (L - j))
        work(args, pos, end, j)
        pos = end
        j = 0


@njit(forceinline=True)
def chan_merge(na, ma, qa, nb, mb, qb):
    """(count, mean, M2) of two parts merged (Chan, Golub & LeVeque 1979):
    n = na + nb, delta = mb - ma, mean = ma + delta*nb/n, M2 = qa + qb + delta^2*na*nb/n.
    Requires n > 0."""
    n = na + nb
    f = nb / n
    delta = mb - ma
    return n, ma + delta * f, qa + (qb + delta * delta * (na * f))


@njit
def fold_runs(part, out):
    """out[k] = sum over runs t (in order) of part[t, k]."""
    for k in range(part.shape[1]):
        acc = 0.0
        for t in range(part.shape[0]):
            acc += part[t, k]
        out[k] = acc


@njit(fastmath=REDUCE_MATH)
def sum_sq(x):
    """Sum of squares of a contiguous 1-D run, in float64."""
    acc = 0.0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        acc += v * v
    return acc
