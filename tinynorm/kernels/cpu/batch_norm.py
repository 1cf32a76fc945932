"""BatchNorm kernels for the CPU (Numba); the math is in :mod:`tinynorm.ops.batch_norm`.

x is viewed as x3 (N, C, S) and every statistic is per channel c, over its N*S values. The
work is split as PyTorch's SyncBatchNorm splits it, so that the statistics can be combined
across iterations, mini-batches or workers between the passes:

    bn_stats            local (count, mean, M2) per channel
    bn_forward_apply    y  = (x - mean) * scale + shift
    bn_backward_reduce  local (sum dy, sum dy*(x - mean)) per channel
    bn_backward_apply   dx = (dy - mean_dy - (x - mean) * k) * g

Arrays are C-contiguous; x3/dy3/y3/dx3 are float32 or float64 (one dtype per call),
per-channel vectors are float64 of shape (C,). Outputs are written into arrays the caller
allocated.

Statistics are accumulated in float64 and are stable for inputs far from zero (1e4 + N(0, 1)
in float32 keeps its variance): every cache-sized piece is reduced in two passes (its mean,
then the squared deviations from it, the second pass reading from cache) and the pieces are
merged with Chan's pairwise formula (:func:`.loops.chan_merge`).

Two traversals (see the package doc) keep the inner loops contiguous:

* planes: one run per thread, walked plane by plane ((n, c) planes of S values), with
  per-channel coefficients or per-thread (C,) accumulators. Used for long planes.
* rows: x read as (N, C*S) rows, each thread a run of rows keeping one accumulator (or
  coefficient) per column, vectorized along the row; column accumulators (TILE_COLS at a
  time) are folded into channels at the end. Used for short planes, e.g. S == 1
  (BatchNorm1d on (N, C)): by the elementwise kernels for S < APPLY_ROWS_MAX_S, by bn_stats
  for S < STATS_ROWS_MAX_S and by bn_backward_reduce for S < REDUCE_ROWS_MAX_S (the last two
  only with at least ROWS_MIN_N rows, when S >= APPLY_ROWS_MAX_S).

Every kernel exists twice, compiled from one body: serial, and parallel with prange over
per-thread runs, the parallel one from PARALLEL_MIN_ELEMENTS values of x3.

The only fast-math flags are REDUCE_MATH's, on the contiguous float64 reduction loops; a NaN in
x or dy reaches every output of its channel.
"""

import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import REDUCE_MATH, njit, serial_and_parallel
from .loops import chan_merge, fold_runs, walk_planes

PARALLEL_MIN_ELEMENTS = 1 << 15
APPLY_ROWS_MAX_S = 32
STATS_ROWS_MAX_S = 128
REDUCE_ROWS_MAX_S = 48
ROWS_MIN_N = 8
SEGMENT = 4096
TILE_COLS = 2048
ROW_BLOCK_BYTES = 1 << 17
MIN_ROW_BLOCK = 8


# ---------------------------------------------------------------------------
# contiguous 1-D runs (loops start at 0 so that LLVM drops the negative-index
# wraparound and vectorizes)


@njit(fastmath=REDUCE_MATH)
def _sum(x):
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
    return acc


@njit(fastmath=REDUCE_MATH)
def _sum_sq_dev(x, m):
    acc = 0.0
    for i in range(x.shape[0]):
        d = x[i] - m
        acc += d * d
    return acc


@njit(fastmath=REDUCE_MATH)
def _sum_and_dot_dev(dy, x, m):
    sdy = 0.0
    sdx = 0.0
    for i in range(x.shape[0]):
        g = np.float64(dy[i])
        sdy += g
        sdx += g * (x[i] - m)
    return sdy, sdx


@njit
def _affine(x, m, a, b, y):
    for i in range(x.shape[0]):
        y[i] = (x[i] - m) * a + b


@njit
def _dx(dy, x, m, mt, md, k, g, dx):
    for i in range(x.shape[0]):
        dx[i] = (dy[i] - md - ((x[i] - m) - mt) * k) * g


@njit
def _affine_per_column(x, m, a, b, y):
    for i in range(x.shape[0]):
        y[i] = (x[i] - m[i]) * a[i] + b[i]


@njit
def _dx_per_column(dy, x, m, mt, md, k, g, dx):
    for i in range(x.shape[0]):
        dx[i] = (dy[i] - md[i] - ((x[i] - m[i]) - mt[i]) * k[i]) * g[i]


@njit
def _merge_into(count, mean, m2, c, nb, mb, qb):
    """Chan's merge of (nb, mb, qb) into (count, mean, m2)[c]."""
    if count[c] + nb > 0.0:
        count[c], mean[c], m2[c] = chan_merge(count[c], mean[c], m2[c], nb, mb, qb)


# ---------------------------------------------------------------------------
# rows: columns j0:j1 of rows r0:r1 of x2 (N, C*S), four rows at a time


@njit
def _block_stats(x2, r0, r1, j0, j1, bm, bq):
    """Two-pass column means bm[:j1-j0] and M2 bq of a cache-sized block."""
    w = j1 - j0
    r4 = r0 + (r1 - r0) // 4 * 4
    for j in range(w):
        bm[j] = 0.0
        bq[j] = 0.0
    for r in range(r0, r4, 4):
        a0 = x2[r, j0:j1]
        a1 = x2[r + 1, j0:j1]
        a2 = x2[r + 2, j0:j1]
        a3 = x2[r + 3, j0:j1]
        for j in range(w):
            bm[j] += (np.float64(a0[j]) + a1[j]) + (np.float64(a2[j]) + a3[j])
    for r in range(r4, r1):
        a0 = x2[r, j0:j1]
        for j in range(w):
            bm[j] += a0[j]
    inv = 1.0 / (r1 - r0)
    for j in range(w):
        bm[j] *= inv
    for r in range(r0, r4, 4):
        a0 = x2[r, j0:j1]
        a1 = x2[r + 1, j0:j1]
        a2 = x2[r + 2, j0:j1]
        a3 = x2[r + 3, j0:j1]
        for j in range(w):
            m = bm[j]
            d0 = a0[j] - m
            d1 = a1[j] - m
            d2 = a2[j] - m
            d3 = a3[j] - m
            bq[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    for r in range(r4, r1):
        a0 = x2[r, j0:j1]
        for j in range(w):
            d0 = a0[j] - bm[j]
            bq[j] += d0 * d0


@njit
def _merge_columns(am, aq, w, na, bm, bq, nb):
    """Chan's merge of column stats (na, am, aq) <- (nb, bm, bq) over w columns."""
    if na == 0.0:
        for j in range(w):
            am[j] = bm[j]
            aq[j] = bq[j]
        return
    f = nb / (na + nb)
    fab = na * f
    for j in range(w):
        delta = bm[j] - am[j]
        am[j] += delta * f
        aq[j] += bq[j] + delta * delta * fab


@njit
def _add_block_sums(dy2, x2, r0, r1, j0, j1, mt, ad, ax):
    """ad += column sums of dy, ax += column sums of dy*(x - mt)."""
    w = j1 - j0
    r4 = r0 + (r1 - r0) // 4 * 4
    for r in range(r0, r4, 4):
        g0 = dy2[r, j0:j1]
        g1 = dy2[r + 1, j0:j1]
        g2 = dy2[r + 2, j0:j1]
        g3 = dy2[r + 3, j0:j1]
        v0 = x2[r, j0:j1]
        v1 = x2[r + 1, j0:j1]
        v2 = x2[r + 2, j0:j1]
        v3 = x2[r + 3, j0:j1]
        for j in range(w):
            m = mt[j]
            e0 = np.float64(g0[j])
            e1 = np.float64(g1[j])
            e2 = np.float64(g2[j])
            e3 = np.float64(g3[j])
            ad[j] += (e0 + e1) + (e2 + e3)
            ax[j] += ((e0 * (v0[j] - m) + e1 * (v1[j] - m))
                      + (e2 * (v2[j] - m) + e3 * (v3[j] - m)))
    for r in range(r4, r1):
        g0 = dy2[r, j0:j1]
        v0 = x2[r, j0:j1]
        for j in range(w):
            e0 = np.float64(g0[j])
            ad[j] += e0
            ax[j] += e0 * (v0[j] - mt[j])


# ---------------------------------------------------------------------------
# statistics


@njit(forceinline=True)
def _stats_piece(args, pos, end, c):
    """Merge the seg-sized pieces of x1[pos:end] into the run's accumulators of channel c."""
    x1, seg, count, mean, m2 = args
    for p0 in range(pos, end, seg):
        p1 = min(p0 + seg, end)
        nb = np.float64(p1 - p0)
        mb = _sum(x1[p0:p1]) / nb
        _merge_into(count, mean, m2, c, nb, mb, _sum_sq_dev(x1[p0:p1], mb))


def _stats_planes(x1, C, S, seg, nchunks, count, mean, m2):
    pc = np.zeros((nchunks, C))
    pm = np.zeros((nchunks, C))
    pq = np.zeros((nchunks, C))
    for t in prange(nchunks):
        walk_planes(_stats_piece, (x1, seg, pc[t], pm[t], pq[t]), x1.shape[0], t, nchunks, S, C)
    _merge_chunks(pc, pm, pq, count, mean, m2)


def _stats_rows(x2, C, S, block, tile, nchunks, count, mean, m2):
    N, CS = x2.shape
    pc = np.zeros((nchunks, C))
    pm = np.zeros((nchunks, C))
    pq = np.zeros((nchunks, C))
    for t in prange(nchunks):
        r0 = N * t // nchunks
        r1 = N * (t + 1) // nchunks
        bm = np.empty(tile)
        bq = np.empty(tile)
        am = np.empty(tile)
        aq = np.empty(tile)
        for j0 in range(0, CS, tile):
            j1 = min(j0 + tile, CS)
            na = 0.0
            for b0 in range(r0, r1, block):
                b1 = min(b0 + block, r1)
                _block_stats(x2, b0, b1, j0, j1, bm, bq)
                _merge_columns(am, aq, j1 - j0, na, bm, bq, np.float64(b1 - b0))
                na += b1 - b0
            for c in range(j0 // S, (j1 - 1) // S + 1):
                for j in range(max(j0, c * S) - j0, min(j1, c * S + S) - j0):
                    _merge_into(pc[t], pm[t], pq[t], c, na, am[j], aq[j])
    _merge_chunks(pc, pm, pq, count, mean, m2)


@njit
def _merge_chunks(pc, pm, pq, count, mean, m2):
    count[:] = 0.0
    mean[:] = 0.0
    m2[:] = 0.0
    for t in range(pc.shape[0]):
        for c in range(pc.shape[1]):
            if pc[t, c] > 0.0:
                _merge_into(count, mean, m2, c, pc[t, c], pm[t, c], pq[t, c])


_stats_planes_serial, _stats_planes_parallel = serial_and_parallel(_stats_planes)
_stats_rows_serial, _stats_rows_parallel = serial_and_parallel(_stats_rows)


# ---------------------------------------------------------------------------
# elementwise passes (in x's dtype; coefficients already cast)


@njit(forceinline=True)
def _affine_piece(args, pos, end, c):
    x1, mean, scale, shift, y1 = args
    _affine(x1[pos:end], mean[c], scale[c], shift[c], y1[pos:end])


def _forward_apply_planes(x1, C, S, nchunks, mean, scale, shift, y1):
    for t in prange(nchunks):
        walk_planes(_affine_piece, (x1, mean, scale, shift, y1), x1.shape[0], t, nchunks, S, C)


def _forward_apply_rows(x2, nchunks, mean, scale, shift, y2):
    N, CS = x2.shape
    for t in prange(nchunks):
        for r in range(N * t // nchunks, N * (t + 1) // nchunks):
            _affine_per_column(x2[r], mean, scale, shift, y2[r])


@njit(forceinline=True)
def _dx_piece(args, pos, end, c):
    dy1, x1, mean, mean_tail, mean_dy, k, g, dx1 = args
    _dx(dy1[pos:end], x1[pos:end], mean[c], mean_tail[c], mean_dy[c], k[c], g[c], dx1[pos:end])


def _backward_apply_planes(dy1, x1, C, S, nchunks, mean, mean_tail, mean_dy, k, g, dx1):
    for t in prange(nchunks):
        walk_planes(_dx_piece, (dy1, x1, mean, mean_tail, mean_dy, k, g, dx1), x1.shape[0], t,
                    nchunks, S, C)


def _backward_apply_rows(dy2, x2, nchunks, mean, mean_tail, mean_dy, k, g, dx2):
    N, CS = x2.shape
    for t in prange(nchunks):
        for r in range(N * t // nchunks, N * (t + 1) // nchunks):
            _dx_per_column(dy2[r], x2[r], mean, mean_tail, mean_dy, k, g, dx2[r])


_forward_apply_planes_serial, _forward_apply_planes_parallel = \
    serial_and_parallel(_forward_apply_planes)
_forward_apply_rows_serial, _forward_apply_rows_parallel = \
    serial_and_parallel(_forward_apply_rows)
_backward_apply_planes_serial, _backward_apply_planes_parallel = \
    serial_and_parallel(_backward_apply_planes)
_backward_apply_rows_serial, _backward_apply_rows_parallel = \
    serial_and_parallel(_backward_apply_rows)


# ---------------------------------------------------------------------------
# backward reductions


@njit(forceinline=True)
def _reduce_piece(args, pos, end, c):
    dy1, x1, mean, sum_dy, sum_dy_xmu = args
    a, b = _sum_and_dot_dev(dy1[pos:end], x1[pos:end], mean[c])
    sum_dy[c] += a
    sum_dy_xmu[c] += b


def _backward_reduce_planes(dy1, x1, C, S, nchunks, mean, sum_dy, sum_dy_xmu):
    pd = np.zeros((nchunks, C))
    px = np.zeros((nchunks, C))
    for t in prange(nchunks):
        walk_planes(_reduce_piece, (dy1, x1, mean, pd[t], px[t]), x1.shape[0], t, nchunks, S, C)
    fold_runs(pd, sum_dy)
    fold_runs(px, sum_dy_xmu)


def _backward_reduce_rows(dy2, x2, C, S, block, tile, nchunks, mean, sum_dy, sum_dy_xmu):
    N, CS = x2.shape
    pd = np.zeros((nchunks, C))
    px = np.zeros((nchunks, C))
    for t in prange(nchunks):
        r0 = N * t // nchunks
        r1 = N * (t + 1) // nchunks
        mt = np.empty(tile)
        ad = np.empty(tile)
        ax = np.empty(tile)
        for j0 in range(0, CS, tile):
            j1 = min(j0 + tile, CS)
            for c in range(j0 // S, (j1 - 1) // S + 1):
                mt[max(j0, c * S) - j0:min(j1, c * S + S) - j0] = mean[c]
            ad[:] = 0.0
            ax[:] = 0.0
            for b0 in range(r0, r1, block):
                _add_block_sums(dy2, x2, b0, min(b0 + block, r1), j0, j1, mt, ad, ax)
            for c in range(j0 // S, (j1 - 1) // S + 1):
                for j in range(max(j0, c * S) - j0, min(j1, c * S + S) - j0):
                    pd[t, c] += ad[j]
                    px[t, c] += ax[j]
    fold_runs(pd, sum_dy)
    fold_runs(px, sum_dy_xmu)


_backward_reduce_planes_serial, _backward_reduce_planes_parallel = \
    serial_and_parallel(_backward_reduce_planes)
_backward_reduce_rows_serial, _backward_reduce_rows_parallel = \
    serial_and_parallel(_backward_reduce_rows)


# ---------------------------------------------------------------------------
# host wrappers


def _nchunks(x3, parts):
    """(number of per-thread runs, parallel?) for x3 split into at most `parts`."""
    return host.parallel_runs(x3.size, parts, PARALLEL_MIN_ELEMENTS, get_num_threads)


def _by_rows(N, S, max_s):
    return S < min(max_s, APPLY_ROWS_MAX_S) or (S < max_s and N >= ROWS_MIN_N)


def _row_block(tile, itemsize):
    return max(MIN_ROW_BLOCK, ROW_BLOCK_BYTES // (tile * itemsize))


def bn_stats(x3, count, mean, m2):
    """Per-channel count, mean and M2 = sum (x - mean)^2 of x3 (N, C, S).

    count[c] = N*S, mean[c] = 1/count sum_{n,s} x[n,c,s],
    m2[c] = sum_{n,s} (x[n,c,s] - mean[c])^2, all float64. An empty channel
    gives (0, 0, 0), which Chan's merge treats as absent.
    """
    host.check_input("x3", x3, "NCS")
    N, C, S = x3.shape
    host.check_vectors((C,), ("count", count), ("mean", mean), ("m2", m2))
    if x3.size == 0:
        count[:] = 0.0
        mean[:] = 0.0
        m2[:] = 0.0
        return
    if _by_rows(N, S, STATS_ROWS_MAX_S):
        nchunks, par = _nchunks(x3, N)
        tile = min(TILE_COLS, C * S)
        f = _stats_rows_parallel if par else _stats_rows_serial
        f(x3.reshape(N, C * S), C, S, _row_block(tile, x3.itemsize), tile, nchunks,
          count, mean, m2)
    else:
        nchunks, par = _nchunks(x3, x3.size)
        f = _stats_planes_parallel if par else _stats_planes_serial
        f(x3.reshape(-1), C, S, SEGMENT, nchunks, count, mean, m2)


def bn_forward_apply(x3, mean, scale, shift, y3):
    """y3 = (x3 - mean[c]) * scale[c] + shift[c], computed in x3's dtype."""
    host.check_input("x3", x3, "NCS", ("y3", y3))
    N, C, S = x3.shape
    host.check_vectors((C,), ("mean", mean), ("scale", scale), ("shift", shift))
    if x3.size == 0:
        return
    dt = x3.dtype
    if S < APPLY_ROWS_MAX_S:
        nchunks, par = _nchunks(x3, N)
        f = _forward_apply_rows_parallel if par else _forward_apply_rows_serial
        cols = (host.per_column(v, dt, S) for v in (mean, scale, shift))
        f(x3.reshape(N, C * S), nchunks, *cols, y3.reshape(N, C * S))
    else:
        nchunks, par = _nchunks(x3, x3.size)
        f = _forward_apply_planes_parallel if par else _forward_apply_planes_serial
        f(x3.reshape(-1), C, S, nchunks, mean.astype(dt), scale.astype(dt),
          shift.astype(dt), y3.reshape(-1))


def bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu):
    """Per-channel sum_dy[c] = sum dy and sum_dy_xmu[c] = sum dy * (x - mean[c]), in float64."""
    host.check_input("x3", x3, "NCS", ("dy3", dy3))
    N, C, S = x3.shape
    host.check_vectors((C,), ("mean", mean), ("sum_dy", sum_dy), ("sum_dy_xmu", sum_dy_xmu))
    if x3.size == 0:
        sum_dy[:] = 0.0
        sum_dy_xmu[:] = 0.0
        return
    if _by_rows(N, S, REDUCE_ROWS_MAX_S):
        nchunks, par = _nchunks(x3, N)
        tile = min(TILE_COLS, C * S)
        f = _backward_reduce_rows_parallel if par else _backward_reduce_rows_serial
        f(dy3.reshape(N, C * S), x3.reshape(N, C * S), C, S,
          _row_block(tile, x3.itemsize), tile, nchunks, mean, sum_dy, sum_dy_xmu)
    else:
        nchunks, par = _nchunks(x3, x3.size)
        f = _backward_reduce_planes_parallel if par else _backward_reduce_planes_serial
        f(dy3.reshape(-1), x3.reshape(-1), C, S, nchunks, mean, sum_dy, sum_dy_xmu)


def bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx3):
    """dx3 = (dy3 - mean_dy[c] - (x3 - mean[c]) * k[c]) * g[c], in x3's dtype.

    The float64 mean enters as a head in x's dtype plus a tail, x - mean =
    (x - head) - tail: with few values per channel and |mean| >> std, dx is
    a small difference of large terms, and a mean rounded to float32 would
    show in it.
    """
    host.check_input("x3", x3, "NCS", ("dy3", dy3), ("dx3", dx3))
    N, C, S = x3.shape
    host.check_vectors((C,), ("mean", mean), ("mean_dy", mean_dy), ("k", k), ("g", g))
    if x3.size == 0:
        return
    dt = x3.dtype
    head = mean.astype(dt)
    tail = mean - head
    if S < APPLY_ROWS_MAX_S:
        nchunks, par = _nchunks(x3, N)
        f = _backward_apply_rows_parallel if par else _backward_apply_rows_serial
        cols = (host.per_column(v, dt, S) for v in (head, tail, mean_dy, k, g))
        f(dy3.reshape(N, C * S), x3.reshape(N, C * S), nchunks, *cols, dx3.reshape(N, C * S))
    else:
        nchunks, par = _nchunks(x3, x3.size)
        f = _backward_apply_planes_parallel if par else _backward_apply_planes_serial
        f(dy3.reshape(-1), x3.reshape(-1), C, S, nchunks, head, tail.astype(dt),
          mean_dy.astype(dt), k.astype(dt), g.astype(dt), dx3.reshape(-1))
