"""LayerNorm's backward for the CPU (Numba), computed in x's dtype; called by :mod:`.group_norm`.

LayerNorm is GroupNorm with one group over the trailing dims: x viewed as x4 (rows, 1, M, 1),
one row per sample, an elementwise affine (gamma, beta of M values) shared by all rows.
gn_backward sends that case here (S == 1 and G == 1 after its layout, dgamma/dbeta wanted)
for its run of rows; everything else, and the forward pass, is GroupNorm's.

Why a backward of its own: with one gamma per column shared by every row, each value carries
its dgamma/dbeta terms as well as A and B, and in float64 the conversions and float64
arithmetic per value cost more than the memory traffic. So it computes in x's dtype:

* The float64 mean is split as hi + lo in x's dtype, and x - mean is (x - hi) - lo, exact near
  the mean (:func:`_centered`).
* One sweep per row writes dx of row r and reduces row r+1, at any row length.
* A and B are summed in x's dtype per CHUNK columns, and the chunk sums in float64.
* The dgamma/dbeta terms go to per-thread accumulators in x's dtype, added into the float64
  ones every FLUSH_ROWS rows.

Their errors are a few float32 units of the terms' magnitudes, as PyTorch's float32 sums. The
only fast-math flags are REDUCE_MATH's, on the sweep; a NaN in a row reaches every output of
that row and every dgamma/dbeta it adds to.
"""
import numpy as np

from .jit import REDUCE_MATH, njit

CHUNK = 512
FLUSH_ROWS = 64


@njit
def dx_coefficients(a, b, M, rstd):
    """(c2, c0) of dx = dy*gamma*rstd - ((x - mean)*c2 + c0), for a row's A = a and B = b."""
    return rstd * rstd * rstd * a / M, rstd * b / M


@njit
def _centered(x, h, l):
    """(x - h) - l, the deviation from a mean kept as h + l in x's dtype. No fast-math here:
    reassociating it into x - (h + l) would round the mean back to x's precision."""
    return (x - h) - l


@njit(fastmath=REDUCE_MATH)
def _dx_reduce(write_dx, dy2, x2, r, h, s, wt, p, q, dx2, rn, hn, ln, sn, dwx, dbx):
    """(A, B) of row rn: A = sum dy*w*(x - mean), B = sum dy*w; dwx += dy*(x - mean)*sn,
    dbx += dy; with write_dx, also dx of row r = dy*w*s - ((x - h)*p + q), in the same sweep.

    Products in x's dtype, summed per CHUNK columns, the chunk sums in float64."""
    M = wt.shape[0]
    a_sum = 0.0
    b_sum = 0.0
    zero = x2.dtype.type(0)
    for c in range(0, M, CHUNK):
        a = zero
        b = zero
        for i in range(np.uint64(c), np.uint64(min(c + CHUNK, M))):
            wi = wt[i]
            if write_dx:
                dx2[r, i] = dy2[r, i] * wi * s - ((x2[r, i] - h) * p + q)
            g = dy2[rn, i]
            u = g * _centered(x2[rn, i], hn, ln)
            a += u * wi
            b += g * wi
            dwx[i] += u * sn
            dbx[i] += g
        a_sum += a
        b_sum += b
    return a_sum, b_sum


@njit
def _dx(dy2, x2, r, h, s, wt, p, q, dx2):
    for i in range(np.uint64(0), np.uint64(wt.shape[0])):
        dx2[r, i] = dy2[r, i] * wt[i] * s - ((x2[r, i] - h) * p + q)


@njit
def ln_backward_run(dy2, x2, r0, r1, mean, rstd, wt, need_dx, hi, lo, sx, dwx, dbx, dw, db,
                    dx2):
    """LayerNorm's backward (one elementwise affine shared by all rows) over rows r0:r1.

    The mean is split as hi + lo in x's dtype, so x - mean stays exact near the mean.
    One sweep per row writes dx of row r and reduces row r+1 (A, B, and its dgamma/dbeta
    terms into dwx/dbx, in x's dtype); dwx/dbx are added into the float64 dw/db every
    FLUSH_ROWS rows. dx = dy*w*rstd - ((x - mean)*c2 + c0), c2 = rstd^3*A/M, c0 = rstd*B/M.
    """
    M = wt.shape[0]
    cast = x2.dtype.type
    for r in range(r0, r1):
        hi[r] = cast(mean[r])
        lo[r] = cast(mean[r] - hi[r])
        sx[r] = cast(rstd[r])
    dwx[:] = 0
    dbx[:] = 0
    one = cast(1)
    a, b = _dx_reduce(False, dy2, x2, r0, one, one, wt, one, one, dx2, r0, hi[r0], lo[r0],
                      sx[r0], dwx, dbx)
    for r in range(r0, r1):
        c2, c0 = dx_coefficients(a, b, M, rstd[r])
        p, q = cast(c2), cast(c0 - c2 * lo[r])
        if r + 1 < r1:
            a, b = _dx_reduce(need_dx, dy2, x2, r, hi[r], sx[r], wt, p, q, dx2, r + 1,
                              hi[r + 1], lo[r + 1], sx[r + 1], dwx, dbx)
        elif need_dx:
            _dx(dy2, x2, r, hi[r], sx[r], wt, p, q, dx2)
        if (r + 2 - r0) % FLUSH_ROWS == 0 or r + 1 == r1:
            for i in range(M):
                dw[i] += dwx[i]
                db[i] += dbx[i]
                dwx[i] = 0
                dbx[i] = 0
