"""GroupNorm's loops over one row of its (R, M) view, for :mod:`.group_norm`'s traversals.

``(x2, r, p0, p1)`` is x2[r, p0:p1]. The leaves index the 2-D arrays directly; a view per row
would update the array's shared reference count, an atomic that the threads contend for.
Unsigned column indices skip Numba's negative-index wraparound, which keeps the loops
vectorized. Layout, numerics and fast-math flags: see :mod:`.group_norm`.
"""
import numpy as np

from .jit import REDUCE_MATH, njit
from .loops import chan_merge

# ---------------------------------------------------------------------------
# runs of one row


@njit(fastmath=REDUCE_MATH)
def row_sum(x2, r, p0, p1):
    acc = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        acc += x2[r, i]
    return acc


@njit(fastmath=REDUCE_MATH)
def row_sum_sq_dev(x2, r, p0, p1, m):
    acc = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        d = x2[r, i] - m
        acc += d * d
    return acc


@njit(fastmath=REDUCE_MATH)
def _sum_and_dot_dev(dy2, x2, r, p0, p1, m):
    sd = 0.0
    sx = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        g = np.float64(dy2[r, i])
        sd += g
        sx += g * (x2[r, i] - m)
    return sd, sx


@njit
def _split_affine(x, h, a, la, w, b):
    """((x - h)*a - la)*w + b = (x - mean)*a*w + b for mean = h + l, la = l*a: x - h is exact
    near the mean, so the mean is not rounded to x's dtype. No fast-math here: reassociating
    around x - h would undo that."""
    return ((x - h) * a - la) * w + b


@njit
def _affine(x2, r, p0, p1, h, a, b, y2):
    """y = (x - h)*a + b; the caller folds the mean's low part into b."""
    for i in range(np.uint64(p0), np.uint64(p1)):
        y2[r, i] = (x2[r, i] - h) * a + b


@njit
def _affine_elementwise(x2, r, p0, p1, h, s, ls, w, b, off, y2):
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        y2[r, i] = _split_affine(x2[r, i], h, s, ls, w[o + i], b[o + i])


@njit(fastmath=REDUCE_MATH)
def _affine_stats(x2, r, p0, p1, h, a, b, y2, r1, m1, r2):
    """_affine of row r; returns (sum of row r2, squared deviations of row r1 from m1)."""
    acc = 0.0
    q = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        y2[r, i] = (x2[r, i] - h) * a + b
        d = x2[r1, i] - m1
        q += d * d
        acc += x2[r2, i]
    return acc, q


@njit(fastmath=REDUCE_MATH)
def _affine_elementwise_stats(x2, r, h, s, ls, w, b, off, y2, r1, m1, r2):
    """_affine_elementwise of the whole row r; returns _affine_stats' sums."""
    acc = 0.0
    q = 0.0
    o = np.uint64(off)
    for i in range(np.uint64(0), np.uint64(x2.shape[1])):
        y2[r, i] = _split_affine(x2[r, i], h, s, ls, w[o + i], b[o + i])
        d = x2[r1, i] - m1
        q += d * d
        acc += x2[r2, i]
    return acc, q


@njit
def _dx(dy2, x2, r, p0, p1, m, a, c2, c0, dx2):
    for i in range(np.uint64(p0), np.uint64(p1)):
        dx2[r, i] = np.float64(dy2[r, i]) * a - ((np.float64(x2[r, i]) - m) * c2 + c0)


# The *_at helpers are one column's work, inlined into the loops below (each loop keeps its
# own fast-math flags).


@njit(inline="always")
def _dx_at(dy2, x2, r, i, m, s, w, o, c2, c0):
    """dx of column i of row r for the elementwise affine w[o:]."""
    return np.float64(dy2[r, i]) * w[o + i] * s - ((np.float64(x2[r, i]) - m) * c2 + c0)


@njit(inline="always")
def _reduce_at(dy2, x2, r, i, m, s, w, o, dw, db):
    """Column i of row r: dw[o+i] += dy*(x - m)*s, db[o+i] += dy; returns the terms of A and B,
    dy*w*(x - m) and dy*w."""
    g = np.float64(dy2[r, i])
    u = g * (x2[r, i] - m)
    dw[o + i] += u * s
    db[o + i] += g
    return u * w[o + i], g * w[o + i]


@njit(inline="always")
def _reduce_at_no_params(dy2, x2, r, i, m, w, o):
    """_reduce_at's terms of A and B, without dgamma/dbeta."""
    g = np.float64(dy2[r, i]) * w[o + i]
    return g * (x2[r, i] - m), g


@njit
def _dx_elementwise(dy2, x2, r, p0, p1, m, s, w, off, c2, c0, dx2):
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        dx2[r, i] = _dx_at(dy2, x2, r, i, m, s, w, o, c2, c0)


@njit(fastmath=REDUCE_MATH)
def _reduce_elementwise(dy2, x2, r, p0, p1, m, s, w, off, dw, db):
    """A = sum dy*w*(x - m), B = sum dy*w; dw += dy*(x - m)*s, db += dy."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        da, dbt = _reduce_at(dy2, x2, r, i, m, s, w, o, dw, db)
        a += da
        b += dbt
    return a, b


@njit(fastmath=REDUCE_MATH)
def _dx_sum_and_dot_dev(dy2, x2, r, p0, p1, m, a, c2, c0, dx2, rn, mn):
    """_dx of row r; returns _sum_and_dot_dev of row rn over the same columns, read meanwhile."""
    sd = 0.0
    sx = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        dx2[r, i] = np.float64(dy2[r, i]) * a - ((np.float64(x2[r, i]) - m) * c2 + c0)
        g = np.float64(dy2[rn, i])
        sd += g
        sx += g * (x2[rn, i] - mn)
    return sd, sx


@njit(fastmath=REDUCE_MATH)
def _dx_reduce_elementwise(dy2, x2, r, m, s, wt, off, c2, c0, dx2, rn, mn, sn, w, offn, dw, db):
    """_dx_elementwise of row r; returns _reduce_elementwise of row rn, read meanwhile."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    on = np.uint64(offn)
    for i in range(np.uint64(0), np.uint64(x2.shape[1])):
        dx2[r, i] = _dx_at(dy2, x2, r, i, m, s, wt, o, c2, c0)
        da, dbt = _reduce_at(dy2, x2, rn, i, mn, sn, w, on, dw, db)
        a += da
        b += dbt
    return a, b


# Deliberately a near-copy of _dx_reduce_elementwise: a has-params flag inside this loop would
# cost its vectorization, so each case keeps its own branch-free loop.
@njit(fastmath=REDUCE_MATH)
def _dx_reduce_elementwise_no_params(dy2, x2, r, m, s, wt, off, c2, c0, dx2, rn, mn, w, offn):
    """_dx_elementwise of row r; returns _reduce_elementwise_no_params of row rn."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    on = np.uint64(offn)
    for i in range(np.uint64(0), np.uint64(x2.shape[1])):
        dx2[r, i] = _dx_at(dy2, x2, r, i, m, s, wt, o, c2, c0)
        da, dbt = _reduce_at_no_params(dy2, x2, rn, i, mn, w, on)
        a += da
        b += dbt
    return a, b


@njit(fastmath=REDUCE_MATH)
def _reduce_elementwise_no_params(dy2, x2, r, p0, p1, m, w, off):
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        da, dbt = _reduce_at_no_params(dy2, x2, r, i, m, w, o)
        a += da
        b += dbt
    return a, b


# ---------------------------------------------------------------------------
# one row, columns m0:m1 (rows are (n, g); off = g*K is the row's first slot)


@njit
def row_stats(x2, r, m0, m1, seg):
    """(mean, M2) of x2[r, m0:m1], two passes per piece of seg values, Chan-merged."""
    n = 0.0
    mean = 0.0
    m2 = 0.0
    for p0 in range(m0, m1, seg):
        p1 = min(p0 + seg, m1)
        nb = np.float64(p1 - p0)
        mb = row_sum(x2, r, p0, p1) / nb
        n, mean, m2 = chan_merge(n, mean, m2, nb, mb, row_sum_sq_dev(x2, r, p0, p1, mb))
    return mean, m2


@njit
def apply_range(x2, y2, r, m0, m1, S, off, w, b, wt, bt, mean, rstd):
    """y[m0:m1] = (x - mean) * rstd * gamma + beta of row r, the mean held as hi + lo in x's
    dtype (lo folded into the shift)."""
    cast = x2.dtype.type
    mt = cast(mean)
    lo = mean - np.float64(mt)
    if S == 1:
        _affine_elementwise(x2, r, m0, m1, mt, cast(rstd), cast(lo * rstd), wt, bt, off, y2)
        return
    k = m0 // S
    pos = m0
    while pos < m1:
        end = min(m1, (k + 1) * S)
        a = rstd * w[off + k]
        _affine(x2, r, pos, end, mt, cast(a), cast(b[off + k] - lo * a), y2)
        pos = end
        k += 1


@njit
def apply_row_stats(x2, y2, r, r1, m1, r2, S, off, w, b, wt, bt, mean, rstd):
    """apply_range of the whole row r; returns (sum of row r2, M2 of row r1 about m1)."""
    cast = x2.dtype.type
    mt = cast(mean)
    lo = mean - np.float64(mt)
    if S == 1:
        return _affine_elementwise_stats(x2, r, mt, cast(rstd), cast(lo * rstd), wt, bt, off, y2,
                                         r1, m1, r2)
    acc = 0.0
    q = 0.0
    for k in range(x2.shape[1] // S):
        a = rstd * w[off + k]
        sk, qk = _affine_stats(x2, r, k * S, (k + 1) * S, mt, cast(a), cast(b[off + k] - lo * a),
                               y2, r1, m1, r2)
        acc += sk
        q += qk
    return acc, q


@njit
def reduce_range(dy2, x2, r, m0, m1, S, off, w, mean, rstd, params, dw, db):
    """(A, B) over columns m0:m1 of row r; with params, dw += dy*xhat, db += dy per slot."""
    if S == 1:
        if params:
            return _reduce_elementwise(dy2, x2, r, m0, m1, mean, rstd, w, off, dw, db)
        return _reduce_elementwise_no_params(dy2, x2, r, m0, m1, mean, w, off)
    a = 0.0
    b = 0.0
    k = m0 // S
    pos = m0
    while pos < m1:
        end = min(m1, (k + 1) * S)
        sd, sx = _sum_and_dot_dev(dy2, x2, r, pos, end, mean)
        wk = w[off + k]
        a += wk * sx
        b += wk * sd
        if params:
            dw[off + k] += sx * rstd
            db[off + k] += sd
        pos = end
        k += 1
    return a, b


@njit
def dx_range(dy2, x2, r, m0, m1, S, off, w, wt, mean, rstd, c2, c0, dx2):
    """dx[m0:m1] = dy*gamma*rstd - ((x - mean)*c2 + c0) of row r, evaluated in float64.

    dx is a small difference of large terms when |mean| >> std over few values,
    so the float64 mean must not be rounded to x's dtype first.
    """
    if S == 1:
        _dx_elementwise(dy2, x2, r, m0, m1, mean, rstd, wt, off, c2, c0, dx2)
        return
    k = m0 // S
    pos = m0
    while pos < m1:
        end = min(m1, (k + 1) * S)
        _dx(dy2, x2, r, pos, end, mean, w[off + k] * rstd, c2, c0, dx2)
        pos = end
        k += 1


@njit
def dx_row_reduce(dy2, x2, r, rn, S, off, offn, w, wt, mean, rstd, c2, c0, mean_n, rstd_n,
                  params, dw, db, dx2):
    """dx_range of the whole row r; returns reduce_range of the whole row rn."""
    if S == 1:
        if params:
            return _dx_reduce_elementwise(dy2, x2, r, mean, rstd, wt, off, c2, c0, dx2, rn,
                                          mean_n, rstd_n, w, offn, dw, db)
        return _dx_reduce_elementwise_no_params(dy2, x2, r, mean, rstd, wt, off, c2, c0,
                                                dx2, rn, mean_n, w, offn)
    a = 0.0
    b = 0.0
    for k in range(x2.shape[1] // S):
        sd, sx = _dx_sum_and_dot_dev(dy2, x2, r, k * S, (k + 1) * S, mean, w[off + k] * rstd,
                                     c2, c0, dx2, rn, mean_n)
        wk = w[offn + k]
        a += wk * sx
        b += wk * sd
        if params:
            dw[offn + k] += sx * rstd_n
            db[offn + k] += sd
    return a, b
