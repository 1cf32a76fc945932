"""Group normalization kernels for the CPU (Numba), shared by GroupNorm, LayerNorm and InstanceNorm.

Group Normalization (Wu & He, 2018, "Group Normalization") normalizes every
(sample, group) over its own values. The kernels read x as x4 of shape
(N, G, K, S): N samples, G groups, K affine slots per group, S values per
slot. Row r = (n, g) of M = K*S values has its own statistics; slot (g, k)
has its own gamma and beta:

    mean_r = 1/M sum_m x[r, m]        var_r = 1/M sum_m (x[r, m] - mean_r)^2
    rstd_r = 1/sqrt(var_r + eps)      xhat  = (x - mean_r) * rstd_r
    y      = gamma[g, k] * xhat + beta[g, k]

    GroupNorm       (N, G, C/G, *spatial)    per-channel affine
    InstanceNorm    (N, C, 1, *spatial)      GroupNorm with G = C (Ulyanov et al. 2016)
    LayerNorm       (rows, 1, M, 1)          elementwise affine (Ba et al. 2016)

Backward, with dxhat = gamma * dy and the per-row reductions
A_r = sum_m dy*gamma*(x - mean_r), B_r = sum_m dy*gamma:

    dx     = rstd * (dxhat - B/M - xhat * rstd*A/M)
           = dy * gamma*rstd - ((x - mean) * rstd^3*A/M + rstd*B/M)
    dgamma = sum over (n, s) of dy*xhat,    dbeta = sum over (n, s) of dy

Two public functions:

    gn_forward    stats (mean, rstd per row) and y
    gn_backward   A, B per row, dx, and dgamma/dbeta

Rows of at most SEGMENT values run as a software pipeline over a thread's
run of rows, so that every pass that writes an output also streams the next
rows in from memory: the forward pass over row r writes y of row r, sums
row r+2 (its first read) and the squared deviations of row r+1 from its mean
(read from cache); the backward pass over row r writes dx of row r and
reduces A, B (and dgamma/dbeta) of row r+1. Longer rows take one pass per
statistic and one for the output, each re-reading the row from cache, except
LayerNorm's backward (see rows below), which is a pipeline at any length.

Statistics and reductions accumulate in float64 (LayerNorm's backward: see
rows below). A row is reduced piece by piece (SEGMENT values): each piece's
mean, then its squared deviations from that mean (read from cache), the
pieces merged with the pairwise formula of Chan, Golub & LeVeque (1979):

    n = na + nb,  delta = mean_b - mean_a,
    mean = mean_a + delta * nb/n,  M2 = M2_a + M2_b + delta^2 * na*nb/n

so 1e4 + N(0, 1) in float32 keeps its variance. Elementwise work runs in x's
dtype as (x - mean) * a + b, never x*a + (b - mean*a), which would cancel,
with the float64 mean held as hi + lo in x's dtype: y = (x - hi)*a + (b -
lo*a), where x - hi is exact near the mean, so y of 1e4 + N(0, 1) in
float32 is as exact as for N(0, 1) (rounding the mean alone would cost
ulp(1e4)*rstd = 5e-4 of xhat).

Affine layouts. With S >= ELEMENTWISE_MIN_S the per-slot gamma/beta are
scalars over a contiguous run of S values ("slot" loops). Shorter slots are
turned into an elementwise affine over the row (gamma repeated S times, so
K*S slots of one value each; LayerNorm always is one) and the inner loops run
along the row with a coefficient per value.

Parallel traversals (the host wrappers pick them; small inputs, fewer than
PARALLEL_MIN_ELEMENTS values, run the serial build of the same bodies):

* rows: each thread takes a contiguous run of rows and fuses the passes of a
  row; dgamma/dbeta go to per-thread (threads, G*K) float64 accumulators
  that the wrapper preallocates and sums.
* LayerNorm's backward (an elementwise affine shared by all rows: S == 1,
  G == 1, dgamma/dbeta wanted) computes in x's dtype, since float64
  conversions and arithmetic cost more than the memory traffic there
  (float32: 1.0 against 1.7 cycles per value in cache; 1.2-1.4x the time
  of a plain read-2-write-1 stream from memory instead of 1.5-1.6x). One sweep
  per row writes dx of row r and reduces row r+1, at any row length. x -
  mean is (x - hi) - lo; A, B are summed in x's dtype per CHUNK columns and
  the chunk sums in float64; the dgamma/dbeta terms go to per-thread
  accumulators in x's dtype, added into the float64 ones every FLUSH_ROWS
  rows. Their errors are a few float32 units of the terms' magnitudes, as
  PyTorch's float32 sums.
* cols: few long rows (fewer than SPLIT_ROWS_PER_THREAD rows per thread,
  e.g. LayerNorm over a whole image): the rows are cut into P column pieces,
  each a work item over all rows; per-piece partial stats (or A, B) are
  merged between two kernel launches.

The only fast-math flags are 'reassoc' and 'contract', on the loops that
reduce; no flag assumes away NaN or Inf, so a NaN in a row reaches every
output of that row (and its slots' dgamma/dbeta).
"""
import numpy as np
from numba import get_num_threads, prange

from .jit import njit, serial_and_parallel

PARALLEL_MIN_ELEMENTS = 1 << 15
SEGMENT = 8192
ELEMENTWISE_MIN_S = 16
SPLIT_ROWS_PER_THREAD = 4
MIN_PIECE = 4096
PIECES_PER_THREAD = 2
CHUNK = 512
FLUSH_ROWS = 64

_REDUCE_MATH = {"reassoc", "contract"}


# ---------------------------------------------------------------------------
# runs of one row: (x2, r, p0, p1) is x2[r, p0:p1]. The leaves index the 2-D
# arrays directly; a view per row would update the array's shared reference
# count, an atomic that the threads contend for. Unsigned column indices skip
# Numba's negative-index wraparound, which keeps the loops vectorized.


@njit(fastmath=_REDUCE_MATH)
def _sum(x2, r, p0, p1):
    acc = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        acc += x2[r, i]
    return acc


@njit(fastmath=_REDUCE_MATH)
def _sum_sq_dev(x2, r, p0, p1, m):
    acc = 0.0
    for i in range(np.uint64(p0), np.uint64(p1)):
        d = x2[r, i] - m
        acc += d * d
    return acc


@njit(fastmath=_REDUCE_MATH)
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


@njit(fastmath=_REDUCE_MATH)
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


@njit(fastmath=_REDUCE_MATH)
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


@njit
def _dx_elementwise(dy2, x2, r, p0, p1, m, s, w, off, c2, c0, dx2):
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        dx2[r, i] = np.float64(dy2[r, i]) * w[o + i] * s - ((np.float64(x2[r, i]) - m) * c2 + c0)


@njit(fastmath=_REDUCE_MATH)
def _reduce_elementwise(dy2, x2, r, p0, p1, m, s, w, off, dw, db):
    """A = sum dy*w*(x - m), B = sum dy*w; dw += dy*(x - m)*s, db += dy."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        g = np.float64(dy2[r, i])
        u = g * (x2[r, i] - m)
        a += u * w[o + i]
        b += g * w[o + i]
        dw[o + i] += u * s
        db[o + i] += g
    return a, b


@njit(fastmath=_REDUCE_MATH)
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


@njit(fastmath=_REDUCE_MATH)
def _dx_reduce_elementwise(dy2, x2, r, m, s, wt, off, c2, c0, dx2, rn, mn, sn, w, offn, dw, db):
    """_dx_elementwise of row r; returns _reduce_elementwise of row rn, read meanwhile."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    on = np.uint64(offn)
    for i in range(np.uint64(0), np.uint64(x2.shape[1])):
        dx2[r, i] = np.float64(dy2[r, i]) * wt[o + i] * s - ((np.float64(x2[r, i]) - m) * c2 + c0)
        g = np.float64(dy2[rn, i])
        u = g * (x2[rn, i] - mn)
        a += u * w[on + i]
        b += g * w[on + i]
        dw[on + i] += u * sn
        db[on + i] += g
    return a, b


@njit(fastmath=_REDUCE_MATH)
def _dx_reduce_elementwise_no_params(dy2, x2, r, m, s, wt, off, c2, c0, dx2, rn, mn, w, offn):
    """_dx_elementwise of row r; returns _reduce_elementwise_no_params of row rn."""
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    on = np.uint64(offn)
    for i in range(np.uint64(0), np.uint64(x2.shape[1])):
        dx2[r, i] = np.float64(dy2[r, i]) * wt[o + i] * s - ((np.float64(x2[r, i]) - m) * c2 + c0)
        g = np.float64(dy2[rn, i]) * w[on + i]
        a += g * (x2[rn, i] - mn)
        b += g
    return a, b


@njit(fastmath=_REDUCE_MATH)
def _reduce_elementwise_no_params(dy2, x2, r, p0, p1, m, w, off):
    a = 0.0
    b = 0.0
    o = np.uint64(off)
    for i in range(np.uint64(p0), np.uint64(p1)):
        g = np.float64(dy2[r, i]) * w[o + i]
        a += g * (x2[r, i] - m)
        b += g
    return a, b


@njit
def _centered(x, h, l):
    """(x - h) - l, the deviation from a mean kept as h + l in x's dtype. No fast-math here:
    reassociating it into x - (h + l) would round the mean back to x's precision."""
    return (x - h) - l


@njit(fastmath=_REDUCE_MATH)
def _ln_dx_reduce(write_dx, dy2, x2, r, h, s, wt, p, q, dx2, rn, hn, ln, sn, dwx, dbx):
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
def _ln_dx(dy2, x2, r, h, s, wt, p, q, dx2):
    for i in range(np.uint64(0), np.uint64(wt.shape[0])):
        dx2[r, i] = dy2[r, i] * wt[i] * s - ((x2[r, i] - h) * p + q)


@njit
def _ln_backward_run(dy2, x2, r0, r1, mean, rstd, wt, need_dx, hi, lo, sx, dwx, dbx, dw, db,
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
    a, b = _ln_dx_reduce(False, dy2, x2, r0, one, one, wt, one, one, dx2, r0, hi[r0], lo[r0],
                         sx[r0], dwx, dbx)
    for r in range(r0, r1):
        c2, c0 = _dx_coefficients(a, b, M, rstd[r])
        p, q = cast(c2), cast(c0 - c2 * lo[r])
        if r + 1 < r1:
            a, b = _ln_dx_reduce(need_dx, dy2, x2, r, hi[r], sx[r], wt, p, q, dx2, r + 1,
                                 hi[r + 1], lo[r + 1], sx[r + 1], dwx, dbx)
        elif need_dx:
            _ln_dx(dy2, x2, r, hi[r], sx[r], wt, p, q, dx2)
        if (r + 2 - r0) % FLUSH_ROWS == 0 or r + 1 == r1:
            for i in range(M):
                dw[i] += dwx[i]
                db[i] += dbx[i]
                dwx[i] = 0
                dbx[i] = 0


# ---------------------------------------------------------------------------
# one row, columns m0:m1 (rows are (n, g); off = g*K is the row's first slot)


@njit
def _stats(x2, r, m0, m1, seg):
    """(mean, M2) of x2[r, m0:m1], two passes per piece of seg values, Chan-merged."""
    n = 0.0
    mean = 0.0
    m2 = 0.0
    for p0 in range(m0, m1, seg):
        p1 = min(p0 + seg, m1)
        nb = np.float64(p1 - p0)
        mb = _sum(x2, r, p0, p1) / nb
        qb = _sum_sq_dev(x2, r, p0, p1, mb)
        tot = n + nb
        f = nb / tot
        d = mb - mean
        mean += d * f
        m2 += qb + d * d * (n * f)
        n = tot
    return mean, m2


@njit
def _apply_range(x2, y2, r, m0, m1, S, off, w, b, wt, bt, mean, rstd):
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
def _apply_row_stats(x2, y2, r, r1, m1, r2, S, off, w, b, wt, bt, mean, rstd):
    """_apply_range of the whole row r; returns (sum of row r2, M2 of row r1 about m1)."""
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
def _reduce_range(dy2, x2, r, m0, m1, S, off, w, mean, rstd, params, dw, db):
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
def _dx_range(dy2, x2, r, m0, m1, S, off, w, wt, mean, rstd, c2, c0, dx2):
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
def _dx_row_reduce(dy2, x2, r, rn, S, off, offn, w, wt, mean, rstd, c2, c0, mean_n, rstd_n,
                   params, dw, db, dx2):
    """_dx_range of the whole row r; returns _reduce_range of the whole row rn."""
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


@njit
def _dx_coefficients(a, b, M, rstd):
    """(c2, c0) of dx = dy*gamma*rstd - ((x - mean)*c2 + c0)."""
    return rstd * rstd * rstd * a / M, rstd * b / M


# ---------------------------------------------------------------------------
# rows: a run of whole rows per thread, passes fused per row


def _forward_rows(x2, G, K, S, w, b, wt, bt, eps, seg, nchunks, y2, mean, rstd):
    """Rows of at most seg values run as a pipeline, one pass per row that writes y of row r,
    the squared deviations of row r+1 (its mean known) and the sum of row r+2."""
    R, M = x2.shape
    for t in prange(nchunks):
        r0 = R * t // nchunks
        r1 = R * (t + 1) // nchunks
        if M <= seg and r0 < r1:
            mu = _sum(x2, r0, 0, M) / M
            q = _sum_sq_dev(x2, r0, 0, M, mu)
            mu_next = _sum(x2, min(r0 + 1, r1 - 1), 0, M) / M
            for r in range(r0, r1):
                rs = 1.0 / np.sqrt(q / M + eps)
                mean[r] = mu
                rstd[r] = rs
                s, q = _apply_row_stats(x2, y2, r, min(r + 1, r1 - 1), mu_next, min(r + 2, r1 - 1),
                                        S, (r % G) * K, w, b, wt, bt, mu, rs)
                mu = mu_next
                mu_next = s / M
        elif M > seg:
            for r in range(r0, r1):
                mu, m2 = _stats(x2, r, 0, M, seg)
                rs = 1.0 / np.sqrt(m2 / M + eps)
                mean[r] = mu
                rstd[r] = rs
                _apply_range(x2, y2, r, 0, M, S, (r % G) * K, w, b, wt, bt, mu, rs)


def _backward_rows(dy2, x2, G, K, S, w, wt, mean, rstd, seg, nchunks, need_dx, params,
                   dx2, dwp, dbp, hi, lo, sx, dwx, dbx):
    """Rows of at most seg values run as a pipeline, one pass per row that writes dx of row r
    and reduces row r+1; LayerNorm's (S == 1, G == 1) with dgamma/dbeta in x's dtype."""
    R, M = x2.shape
    for t in prange(nchunks):
        dw = dwp[t]
        db = dbp[t]
        r0 = R * t // nchunks
        r1 = R * (t + 1) // nchunks
        if S == 1 and G == 1 and params:
            if r0 < r1:
                _ln_backward_run(dy2, x2, r0, r1, mean, rstd, wt, need_dx, hi, lo, sx, dwx[t],
                                 dbx[t], dw, db, dx2)
            r0 = r1
        if need_dx and M <= seg and r0 < r1 and not (S == 1 and G == 1 and params):
            a, b = _reduce_range(dy2, x2, r0, 0, M, S, (r0 % G) * K, w, mean[r0], rstd[r0],
                                 params, dw, db)
            for r in range(r0, r1):
                c2, c0 = _dx_coefficients(a, b, M, rstd[r])
                off = (r % G) * K
                if r + 1 < r1:
                    a, b = _dx_row_reduce(dy2, x2, r, r + 1, S, off, ((r + 1) % G) * K, w, wt,
                                          mean[r], rstd[r], c2, c0, mean[r + 1], rstd[r + 1],
                                          params, dw, db, dx2)
                else:
                    _dx_range(dy2, x2, r, 0, M, S, off, w, wt, mean[r], rstd[r], c2, c0, dx2)
            r0 = r1
        for r in range(r0, r1):
            off = (r % G) * K
            a, b = _reduce_range(dy2, x2, r, 0, M, S, off, w, mean[r], rstd[r], params, dw, db)
            if need_dx:
                c2, c0 = _dx_coefficients(a, b, M, rstd[r])
                _dx_range(dy2, x2, r, 0, M, S, off, w, wt, mean[r], rstd[r], c2, c0, dx2)


_forward_rows_serial, _forward_rows_parallel = serial_and_parallel(_forward_rows)
_backward_rows_serial, _backward_rows_parallel = serial_and_parallel(_backward_rows)


# ---------------------------------------------------------------------------
# cols: P column pieces of all rows per work item (few long rows)


def _stats_cols(x2, seg, P, pm, pq):
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        for r in range(R):
            pm[p, r], pq[p, r] = _stats(x2, r, m0, m1, seg)


@njit
def _merge_pieces(pm, pq, M, eps, mean, rstd):
    P, R = pm.shape
    for r in range(R):
        n = 0.0
        mu = 0.0
        m2 = 0.0
        for p in range(P):
            nb = np.float64(M * (p + 1) // P - M * p // P)
            tot = n + nb
            f = nb / tot
            d = pm[p, r] - mu
            mu += d * f
            m2 += pq[p, r] + d * d * (n * f)
            n = tot
        mean[r] = mu
        rstd[r] = 1.0 / np.sqrt(m2 / M + eps)


def _apply_cols(x2, G, K, S, w, b, wt, bt, P, mean, rstd, y2):
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        for r in range(R):
            _apply_range(x2, y2, r, m0, m1, S, (r % G) * K, w, b, wt, bt, mean[r], rstd[r])


def _reduce_cols(dy2, x2, G, K, S, w, mean, rstd, P, params, pa, pb, dwp, dbp):
    """Partial (A, B) per piece and row; dwp/dbp has one row per piece, or one row
    shared by all pieces (elementwise affine: the pieces own disjoint columns)."""
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        q = min(np.int64(p), dwp.shape[0] - 1)
        dw = dwp[q]
        db = dbp[q]
        for r in range(R):
            pa[p, r], pb[p, r] = _reduce_range(dy2, x2, r, m0, m1, S, (r % G) * K, w,
                                               mean[r], rstd[r], params, dw, db)


def _dx_cols(dy2, x2, G, K, S, w, wt, mean, rstd, P, c2, c0, dx2):
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        for r in range(R):
            _dx_range(dy2, x2, r, m0, m1, S, (r % G) * K, w, wt, mean[r], rstd[r],
                      c2[r], c0[r], dx2)


_stats_cols_serial, _stats_cols_parallel = serial_and_parallel(_stats_cols)
_apply_cols_serial, _apply_cols_parallel = serial_and_parallel(_apply_cols)
_reduce_cols_serial, _reduce_cols_parallel = serial_and_parallel(_reduce_cols)
_dx_cols_serial, _dx_cols_parallel = serial_and_parallel(_dx_cols)


# ---------------------------------------------------------------------------
# host wrappers


def _check(name, a, shape, dtype):
    assert a.shape == tuple(shape), f"{name}: shape {a.shape}, expected {tuple(shape)}"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
    assert a.flags.c_contiguous, f"{name}: not C-contiguous"


def _check_big(x4, *others):
    assert x4.ndim == 4, f"x4 must be 4-D (N, G, K, S), got shape {x4.shape}"
    assert x4.dtype in (np.float32, np.float64), f"unsupported dtype {x4.dtype}"
    assert x4.flags.c_contiguous, "x4: not C-contiguous"
    for name, a in others:
        if a is not None:
            _check(name, a, x4.shape, x4.dtype)


def _check_small(shape, *arrays):
    for name, a in arrays:
        if a is not None:
            _check(name, a, shape, np.float64)


def _plan(R, M):
    """("rows", runs of rows) or ("cols", column pieces), and whether to run in parallel."""
    if R * M < PARALLEL_MIN_ELEMENTS:
        return "rows", 1, False
    threads = get_num_threads()
    if R < SPLIT_ROWS_PER_THREAD * threads and M >= 2 * MIN_PIECE:
        return "cols", max(1, min(M // MIN_PIECE, PIECES_PER_THREAD * threads)), True
    return "rows", max(1, min(threads, R)), True


def _layout(x4, weight, bias):
    """(x2 (R, M), G, K', S', gamma, beta, gamma and beta in x's dtype) for the kernels.

    Slots shorter than ELEMENTWISE_MIN_S become S' = 1 slots of one value,
    gamma and beta repeated S times.
    """
    N, G, K, S = x4.shape
    w = np.ones(G * K) if weight is None else weight
    b = np.zeros(G * K) if bias is None else bias
    if 1 < S < ELEMENTWISE_MIN_S:
        w, b, K, S = np.repeat(w, S), np.repeat(b, S), K * S, 1
    dt = x4.dtype
    return x4.reshape(N * G, K * S), G, K, S, w, b, w.astype(dt), b.astype(dt)


def gn_forward(x4, weight, bias, eps, y4, mean, rstd):
    """y4 = (x4 - mean[n, g]) * rstd[n, g] * weight[g, k] + bias[g, k]; writes mean and rstd.

    x4 (N, G, K, S) in float32 or float64; weight and bias float64 of shape
    (G*K,) or None (ones, zeros); mean and rstd float64 (N, G): the mean and
    1/sqrt(var + eps) of each row's K*S values, var the biased variance
    (Wu & He 2018, eq. 1-3).
    """
    _check_big(x4, ("y4", y4))
    N, G, K, S = x4.shape
    _check_small((G * K,), ("weight", weight), ("bias", bias))
    _check_small((N, G), ("mean", mean), ("rstd", rstd))
    R, M = N * G, K * S
    if R == 0:
        return
    if M == 0:
        mean[...] = np.nan
        rstd[...] = np.nan
        return
    x2, G, K, S, w, b, wt, bt = _layout(x4, weight, bias)
    y2 = y4.reshape(R, M)
    m1, r1 = mean.reshape(R), rstd.reshape(R)
    how, parts, par = _plan(R, M)
    if how == "rows":
        f = _forward_rows_parallel if par else _forward_rows_serial
        f(x2, G, K, S, w, b, wt, bt, float(eps), SEGMENT, parts, y2, m1, r1)
        return
    pm = np.empty((parts, R))
    pq = np.empty((parts, R))
    _stats_cols_parallel(x2, SEGMENT, parts, pm, pq)
    _merge_pieces(pm, pq, M, float(eps), m1, r1)
    _apply_cols_parallel(x2, G, K, S, w, b, wt, bt, parts, m1, r1, y2)


def gn_backward(dy4, x4, weight, mean, rstd, dx4, dweight, dbias):
    """dx4, dweight, dbias of gn_forward's y for upstream gradient dy4 (each output optional).

    With A = sum dy*gamma*(x - mean) and B = sum dy*gamma over each row of
    M = K*S values: dx = dy*gamma*rstd - ((x - mean)*rstd^3*A/M + rstd*B/M);
    dweight[g, k] = sum_{n, s} dy*(x - mean)*rstd, dbias[g, k] = sum_{n, s} dy.
    Reductions accumulate in float64 (LayerNorm's float32 terms: see rows in the module
    doc); dweight and dbias are float64 (G*K,).
    """
    _check_big(x4, ("dy4", dy4), ("dx4", dx4))
    N, G, K, S = x4.shape
    _check_small((G * K,), ("weight", weight), ("dweight", dweight), ("dbias", dbias))
    _check_small((N, G), ("mean", mean), ("rstd", rstd))
    R, M = N * G, K * S
    need_dx = dx4 is not None
    params = dweight is not None or dbias is not None
    if params and (R == 0 or M == 0):
        for out in (dweight, dbias):
            if out is not None:
                out[...] = 0.0
    if R == 0 or M == 0 or not (need_dx or params):
        return
    x2, G, K2, S2, w, _, wt, _ = _layout(x4, weight, None)
    dy2 = dy4.reshape(R, M)
    dx2 = dx4.reshape(R, M) if need_dx else np.empty((0, 0), x4.dtype)
    m1, r1 = mean.reshape(R), rstd.reshape(R)
    how, parts, par = _plan(R, M)
    acc_rows = parts if (how == "rows" or S2 > 1) else 1
    width = G * K2 if params else 0
    dwp = np.zeros((acc_rows, width))
    dbp = np.zeros((acc_rows, width))
    if how == "rows":
        f = _backward_rows_parallel if par else _backward_rows_serial
        ln = S2 == 1 and G == 1 and params
        dt = x4.dtype
        hi, lo, sx = (np.empty(R if ln else 0, dt) for _ in range(3))
        dwx, dbx = (np.empty((parts, M) if ln else (0, 0), dt) for _ in range(2))
        f(dy2, x2, G, K2, S2, w, wt, m1, r1, SEGMENT, parts, need_dx, params, dx2, dwp, dbp,
          hi, lo, sx, dwx, dbx)
    else:
        pa = np.empty((parts, R))
        pb = np.empty((parts, R))
        _reduce_cols_parallel(dy2, x2, G, K2, S2, w, m1, r1, parts, params, pa, pb, dwp, dbp)
        if need_dx:
            a, b = pa.sum(axis=0), pb.sum(axis=0)
            c2 = r1 * r1 * r1 * a / M
            c0 = r1 * b / M
            _dx_cols_parallel(dy2, x2, G, K2, S2, w, wt, m1, r1, parts, c2, c0, dx2)
    if params:
        for out, part in ((dweight, dwp), (dbias, dbp)):
            if out is not None:
                total = part.sum(axis=0)
                out[...] = total if K2 == K else total.reshape(G * K, S).sum(axis=1)
