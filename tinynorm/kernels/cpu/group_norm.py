"""GroupNorm kernels for the CPU (Numba), shared by GroupNorm, LayerNorm and InstanceNorm.

The math is in :mod:`tinynorm.ops.group_norm`. The kernels read x as x4 (N, G, K, S): N samples,
G groups, K affine slots per group, S values per slot; the 2-D view x2 (R, M) = (N*G, K*S) has
one row per (sample, group), with its own mean and rstd, and slot (g, k) has its own gamma and
beta:

    GroupNorm       (N, G, C/G, *spatial)    per-channel affine
    InstanceNorm    (N, C, 1, *spatial)      GroupNorm with G = C
    LayerNorm       (rows, 1, M, 1)          elementwise affine

    gn_forward    stats (mean, rstd per row) and y
    gn_backward   A = sum dy*gamma*(x - mean), B = sum dy*gamma per row, dx, and dgamma/dbeta

Rows of at most SEGMENT values run as a software pipeline over a thread's run of rows, so that
every pass that writes an output also streams the next rows in from memory: the forward pass
over row r writes y of row r, sums row r+2 (its first read) and the squared deviations of row
r+1 from its mean (read from cache); the backward pass over row r writes dx of row r and
reduces A, B (and dgamma/dbeta) of row r+1. Longer rows take one pass per statistic and one
for the output, each re-reading the row from cache.

Statistics and reductions accumulate in float64 (except LayerNorm's backward, see
:mod:`.layer_norm`). A row is reduced piece by piece (SEGMENT values): each piece's mean, then
its squared deviations from that mean (read from cache), the pieces merged with Chan's
pairwise formula (:func:`.loops.chan_merge`), so 1e4 + N(0, 1) in float32 keeps its variance.
Elementwise work runs in x's dtype as (x - mean) * a + b, never x*a + (b - mean*a), which would
cancel, with the float64 mean held as hi + lo in x's dtype: y = (x - hi)*a + (b - lo*a), where
x - hi is exact near the mean, so y of 1e4 + N(0, 1) in float32 is as exact as for N(0, 1)
(rounding the mean alone would cost ulp(1e4)*rstd = 5e-4 of xhat).

Affine layouts. With S >= ELEMENTWISE_MIN_S the per-slot gamma/beta are scalars over a
contiguous run of S values ("slot" loops). Shorter slots are turned into an elementwise affine
over the row (gamma repeated S times, so K*S slots of one value each; LayerNorm always is one)
and the inner loops run along the row with a coefficient per value.

Traversals (see the package doc; the host wrappers pick them, and small inputs, fewer than
PARALLEL_MIN_ELEMENTS values, run the serial build of the same bodies):

* rows: each thread takes a contiguous run of rows and fuses the passes of a row; dgamma/dbeta
  go to per-thread (threads, G*K) float64 accumulators that the wrapper preallocates and sums.
  LayerNorm's backward (S == 1, G == 1, dgamma/dbeta wanted) runs :mod:`.layer_norm` on the
  thread's rows.
* cols: few long rows (fewer than SPLIT_ROWS_PER_THREAD rows per thread, e.g. LayerNorm over a
  whole image): the rows are cut into P column pieces, each a work item over all rows;
  per-piece partial stats (or A, B) are merged between two kernel launches.

The only fast-math flags are REDUCE_MATH's, on the loops that reduce; no flag assumes away NaN
or Inf, so a NaN in a row reaches every output of that row (and its slots' dgamma/dbeta).
"""
import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import njit, serial_and_parallel
from .group_norm_row import (apply_range, apply_row_stats, dx_range, dx_row_reduce, reduce_range,
                             row_stats, row_sum, row_sum_sq_dev)
from .layer_norm import dx_coefficients, ln_backward_run
from .loops import chan_merge

PARALLEL_MIN_ELEMENTS = 1 << 15
SEGMENT = 8192
ELEMENTWISE_MIN_S = 16
SPLIT_ROWS_PER_THREAD = 4
MIN_PIECE = 4096
PIECES_PER_THREAD = 2


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
            mu = row_sum(x2, r0, 0, M) / M
            q = row_sum_sq_dev(x2, r0, 0, M, mu)
            mu_next = row_sum(x2, min(r0 + 1, r1 - 1), 0, M) / M
            for r in range(r0, r1):
                rs = 1.0 / np.sqrt(q / M + eps)
                mean[r] = mu
                rstd[r] = rs
                s, q = apply_row_stats(x2, y2, r, min(r + 1, r1 - 1), mu_next, min(r + 2, r1 - 1),
                                       S, (r % G) * K, w, b, wt, bt, mu, rs)
                mu = mu_next
                mu_next = s / M
        elif M > seg:
            for r in range(r0, r1):
                mu, m2 = row_stats(x2, r, 0, M, seg)
                rs = 1.0 / np.sqrt(m2 / M + eps)
                mean[r] = mu
                rstd[r] = rs
                apply_range(x2, y2, r, 0, M, S, (r % G) * K, w, b, wt, bt, mu, rs)


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
                ln_backward_run(dy2, x2, r0, r1, mean, rstd, wt, need_dx, hi, lo, sx, dwx[t],
                                dbx[t], dw, db, dx2)
            r0 = r1
        if need_dx and M <= seg and r0 < r1 and not (S == 1 and G == 1 and params):
            a, b = reduce_range(dy2, x2, r0, 0, M, S, (r0 % G) * K, w, mean[r0], rstd[r0],
                                params, dw, db)
            for r in range(r0, r1):
                c2, c0 = dx_coefficients(a, b, M, rstd[r])
                off = (r % G) * K
                if r + 1 < r1:
                    a, b = dx_row_reduce(dy2, x2, r, r + 1, S, off, ((r + 1) % G) * K, w, wt,
                                         mean[r], rstd[r], c2, c0, mean[r + 1], rstd[r + 1],
                                         params, dw, db, dx2)
                else:
                    dx_range(dy2, x2, r, 0, M, S, off, w, wt, mean[r], rstd[r], c2, c0, dx2)
            r0 = r1
        for r in range(r0, r1):
            off = (r % G) * K
            a, b = reduce_range(dy2, x2, r, 0, M, S, off, w, mean[r], rstd[r], params, dw, db)
            if need_dx:
                c2, c0 = dx_coefficients(a, b, M, rstd[r])
                dx_range(dy2, x2, r, 0, M, S, off, w, wt, mean[r], rstd[r], c2, c0, dx2)


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
            pm[p, r], pq[p, r] = row_stats(x2, r, m0, m1, seg)


@njit
def _merge_pieces(pm, pq, M, eps, mean, rstd):
    P, R = pm.shape
    for r in range(R):
        n = 0.0
        mu = 0.0
        m2 = 0.0
        for p in range(P):
            nb = np.float64(M * (p + 1) // P - M * p // P)
            n, mu, m2 = chan_merge(n, mu, m2, nb, pm[p, r], pq[p, r])
        mean[r] = mu
        rstd[r] = 1.0 / np.sqrt(m2 / M + eps)


def _apply_cols(x2, G, K, S, w, b, wt, bt, P, mean, rstd, y2):
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        for r in range(R):
            apply_range(x2, y2, r, m0, m1, S, (r % G) * K, w, b, wt, bt, mean[r], rstd[r])


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
            pa[p, r], pb[p, r] = reduce_range(dy2, x2, r, m0, m1, S, (r % G) * K, w,
                                              mean[r], rstd[r], params, dw, db)


def _dx_cols(dy2, x2, G, K, S, w, wt, mean, rstd, P, c2, c0, dx2):
    R, M = x2.shape
    for p in prange(P):
        m0 = M * p // P
        m1 = M * (p + 1) // P
        for r in range(R):
            dx_range(dy2, x2, r, m0, m1, S, (r % G) * K, w, wt, mean[r], rstd[r],
                     c2[r], c0[r], dx2)


_stats_cols_serial, _stats_cols_parallel = serial_and_parallel(_stats_cols)
_apply_cols_serial, _apply_cols_parallel = serial_and_parallel(_apply_cols)
_reduce_cols_serial, _reduce_cols_parallel = serial_and_parallel(_reduce_cols)
_dx_cols_serial, _dx_cols_parallel = serial_and_parallel(_dx_cols)


# ---------------------------------------------------------------------------
# host wrappers


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
    1/sqrt(var + eps) of each row's K*S values, var the biased variance.
    """
    host.check_input("x4", x4, "NGKS", ("y4", y4))
    N, G, K, S = x4.shape
    host.check_vectors((G * K,), ("weight", weight), ("bias", bias))
    host.check_vectors((N, G), ("mean", mean), ("rstd", rstd))
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
    host.check_input("x4", x4, "NGKS", ("dy4", dy4), ("dx4", dx4))
    N, G, K, S = x4.shape
    host.check_vectors((G * K,), ("weight", weight), ("dweight", dweight), ("dbias", dbias))
    host.check_vectors((N, G), ("mean", mean), ("rstd", rstd))
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
