"""Batch normalization kernels for the CPU (Numba).

Batch Normalization (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating
Deep Network Training by Reducing Internal Covariate Shift") normalizes every
channel c of x, viewed as x3 of shape (N, C, S), over its m = N*S values:

    mean_c = 1/m sum_{n,s} x[n,c,s]          var_c = 1/m sum_{n,s} (x[n,c,s] - mean_c)^2
    y      = (x - mean_c) * gamma_c / sqrt(var_c + eps) + beta_c
    dx     = gamma_c*invstd_c/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))

The work is split as PyTorch's SyncBatchNorm splits it, so that the
statistics can be combined across iterations, mini-batches or workers before
the elementwise passes:

    bn_stats            local (count, mean, M2) per channel
    bn_forward_apply    y  = (x - mean) * scale + shift
    bn_backward_reduce  local (sum dy, sum dy*(x - mean)) per channel
    bn_backward_apply   dx = (dy - mean_dy - (x - mean) * k) * g

Arrays are C-contiguous; x3/dy3/y3/dx3 are float32 or float64 (one dtype per
call), per-channel vectors are float64 of shape (C,). Outputs are written into
arrays the caller allocated.

Statistics are accumulated in float64 and are stable for inputs far from zero
(1e4 + N(0, 1) in float32 keeps its variance): each contiguous piece is
reduced in two passes (its mean, then the squared deviations from it, the
second pass reading from cache) and the pieces are merged with the pairwise
formula of Chan, Golub & LeVeque (1979):

    n = na + nb,  delta = mean_b - mean_a,
    mean = mean_a + delta * nb/n,  M2 = M2_a + M2_b + delta^2 * na*nb/n

Two layouts are handled with contiguous inner loops:

* planes (S >= ROWS_MAX_S): the work is cut into contiguous pieces of at most
  SEGMENT elements of one (n, c) plane; each thread takes a run of pieces and
  keeps one (C,) accumulator.
* rows (S < ROWS_MAX_S, e.g. the (N, C) input of BatchNorm1d): x3 is read as
  (N, C*S) rows; each thread takes a run of rows and keeps one accumulator per
  column, vectorized along the row; columns are folded into channels at the
  end.

Every kernel exists twice, compiled from one body: serial, and parallel with
prange over per-thread chunks. The host wrappers pick the parallel one when
x3 has at least PARALLEL_MIN_ELEMENTS elements.

The only fast-math flags are 'reassoc' and 'contract' on the float64
reduction loops (they let LLVM vectorize a sum); no flag assumes away NaN or
Inf, so a NaN in x or dy reaches every output of its channel.
"""
import types

import numpy as np
from numba import get_num_threads, njit, prange

PARALLEL_MIN_ELEMENTS = 32768
ROWS_MAX_S = 16
SEGMENT = 4096
ROW_BLOCK_BYTES = 1 << 16
MIN_ROW_BLOCK = 8

_REDUCE_MATH = {"reassoc", "contract"}


def _serial_and_parallel(body):
    """Compile `body` twice: serial, and parallel=True (prange).

    The parallel twin is a copy of the function under another qualified name:
    Numba's on-disk cache is keyed by file, qualified name and line, not by
    the `parallel` option, so two dispatchers of one function would share
    (and overwrite) one cache entry.
    """
    twin = types.FunctionType(body.__code__, body.__globals__,
                              body.__name__ + "_parallel", body.__defaults__,
                              body.__closure__)
    twin.__qualname__ = body.__qualname__ + "_parallel"
    twin.__doc__ = body.__doc__
    return njit(cache=True)(body), njit(cache=True, parallel=True)(twin)


# ---------------------------------------------------------------------------
# contiguous reductions, float64 accumulators


@njit(cache=True, fastmath=_REDUCE_MATH)
def _sum(a):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i]
    return acc


@njit(cache=True, fastmath=_REDUCE_MATH)
def _sum_sq_dev(a, m):
    acc = 0.0
    for i in range(a.shape[0]):
        d = a[i] - m
        acc += d * d
    return acc


@njit(cache=True, fastmath=_REDUCE_MATH)
def _sum_and_dot_dev(dy, x, m):
    sdy = 0.0
    sdx = 0.0
    for i in range(x.shape[0]):
        g = np.float64(dy[i])
        sdy += g
        sdx += g * (x[i] - m)
    return sdy, sdx


@njit(cache=True)
def _block_stats(rows, bm, bq):
    """Two-pass column means bm and M2 bq of a block of rows (cache-sized).

    Rows are taken four at a time so that each accumulator is loaded and
    stored once per four rows.
    """
    R = rows.shape[0]
    CS = bm.shape[0]
    R4 = R - R % 4
    for j in range(CS):
        bm[j] = 0.0
        bq[j] = 0.0
    for r in range(0, R4, 4):
        a0 = rows[r]
        a1 = rows[r + 1]
        a2 = rows[r + 2]
        a3 = rows[r + 3]
        for j in range(CS):
            bm[j] += (np.float64(a0[j]) + a1[j]) + (np.float64(a2[j]) + a3[j])
    for r in range(R4, R):
        a0 = rows[r]
        for j in range(CS):
            bm[j] += a0[j]
    inv = 1.0 / R
    for j in range(CS):
        bm[j] *= inv
    for r in range(0, R4, 4):
        a0 = rows[r]
        a1 = rows[r + 1]
        a2 = rows[r + 2]
        a3 = rows[r + 3]
        for j in range(CS):
            m = bm[j]
            d0 = a0[j] - m
            d1 = a1[j] - m
            d2 = a2[j] - m
            d3 = a3[j] - m
            bq[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
    for r in range(R4, R):
        a0 = rows[r]
        for j in range(CS):
            d0 = a0[j] - bm[j]
            bq[j] += d0 * d0


@njit(cache=True)
def _merge_cols(am, aq, na, bm, bq, nb):
    """Chan's merge of column stats (na, am, aq) <- (nb, bm, bq), in place."""
    n = na + nb
    fb = nb / n
    fab = na * nb / n
    for j in range(am.shape[0]):
        delta = bm[j] - am[j]
        am[j] += delta * fb
        aq[j] += bq[j] + delta * delta * fab


@njit(cache=True)
def _add_rows_sum_and_dot_dev(dy_rows, x_rows, m, acc_dy, acc_dx):
    """acc_dy += column sums of dy, acc_dx += column sums of dy*(x - m)."""
    R = x_rows.shape[0]
    CS = acc_dy.shape[0]
    R4 = R - R % 4
    for r in range(0, R4, 4):
        g0 = dy_rows[r]
        g1 = dy_rows[r + 1]
        g2 = dy_rows[r + 2]
        g3 = dy_rows[r + 3]
        x0 = x_rows[r]
        x1 = x_rows[r + 1]
        x2 = x_rows[r + 2]
        x3 = x_rows[r + 3]
        for j in range(CS):
            mj = m[j]
            e0 = np.float64(g0[j])
            e1 = np.float64(g1[j])
            e2 = np.float64(g2[j])
            e3 = np.float64(g3[j])
            acc_dy[j] += (e0 + e1) + (e2 + e3)
            acc_dx[j] += ((e0 * (x0[j] - mj) + e1 * (x1[j] - mj))
                          + (e2 * (x2[j] - mj) + e3 * (x3[j] - mj)))
    for r in range(R4, R):
        g0 = dy_rows[r]
        x0 = x_rows[r]
        for j in range(CS):
            e0 = np.float64(g0[j])
            acc_dy[j] += e0
            acc_dx[j] += e0 * (x0[j] - m[j])


@njit(cache=True)
def _affine(x, m, a, b, y):
    for i in range(x.shape[0]):
        y[i] = (x[i] - m) * a + b


@njit(cache=True)
def _affine_cols(x, m, a, b, y):
    for i in range(x.shape[0]):
        y[i] = (x[i] - m[i]) * a[i] + b[i]


@njit(cache=True)
def _dx(dy, x, m, md, k, g, dx):
    for i in range(x.shape[0]):
        dx[i] = (dy[i] - md - (x[i] - m) * k) * g


@njit(cache=True)
def _dx_cols(dy, x, m, md, k, g, dx):
    for i in range(x.shape[0]):
        dx[i] = (dy[i] - md[i] - (x[i] - m[i]) * k[i]) * g[i]


@njit(cache=True)
def _piece(u, nseg, C, S):
    """Unit u of the plane layout -> (n, c, s0, s1)."""
    p = u // nseg
    q = u - p * nseg
    n = p // C
    c = p - n * C
    return n, c, S * q // nseg, S * (q + 1) // nseg


# ---------------------------------------------------------------------------
# statistics


def _stats_planes(x3, nseg, nchunks, count, mean, m2):
    N, C, S = x3.shape
    units = N * C * nseg
    pc = np.zeros((nchunks, C))
    pm = np.zeros((nchunks, C))
    pq = np.zeros((nchunks, C))
    for t in prange(nchunks):
        for u in range(units * t // nchunks, units * (t + 1) // nchunks):
            n, c, s0, s1 = _piece(u, nseg, C, S)
            seg = x3[n, c, s0:s1]
            nb = np.float64(s1 - s0)
            mb = _sum(seg) / nb
            qb = _sum_sq_dev(seg, mb)
            na = pc[t, c]
            nab = na + nb
            delta = mb - pm[t, c]
            pm[t, c] += delta * (nb / nab)
            pq[t, c] += qb + delta * delta * (na * nb / nab)
            pc[t, c] = nab
    for c in range(C):
        tn = 0.0
        tm = 0.0
        tq = 0.0
        for t in range(nchunks):
            wn = pc[t, c]
            if wn == 0.0:
                continue
            wt = tn + wn
            dd = pm[t, c] - tm
            tm += dd * (wn / wt)
            tq += pq[t, c] + dd * dd * (tn * wn / wt)
            tn = wt
        count[c] = tn
        mean[c] = tm
        m2[c] = tq


def _stats_rows(x2, C, block, nchunks, count, mean, m2):
    N, CS = x2.shape
    S = CS // C
    pc = np.zeros(nchunks)
    pm = np.zeros((nchunks, CS))
    pq = np.zeros((nchunks, CS))
    for t in prange(nchunks):
        r0 = N * t // nchunks
        r1 = N * (t + 1) // nchunks
        bm = np.empty(CS)
        bq = np.empty(CS)
        na = 0.0
        for b0 in range(r0, r1, block):
            b1 = min(b0 + block, r1)
            _block_stats(x2[b0:b1], bm, bq)
            nb = np.float64(b1 - b0)
            _merge_cols(pm[t], pq[t], na, bm, bq, nb)
            na += nb
        pc[t] = na
    for c in range(C):
        tn = 0.0
        tm = 0.0
        tq = 0.0
        for t in range(nchunks):
            wn = pc[t]
            if wn == 0.0:
                continue
            for s in range(S):
                jj = c * S + s
                wt = tn + wn
                dd = pm[t, jj] - tm
                tm += dd * (wn / wt)
                tq += pq[t, jj] + dd * dd * (tn * wn / wt)
                tn = wt
        count[c] = tn
        mean[c] = tm
        m2[c] = tq


_stats_planes_serial, _stats_planes_parallel = _serial_and_parallel(_stats_planes)
_stats_rows_serial, _stats_rows_parallel = _serial_and_parallel(_stats_rows)


# ---------------------------------------------------------------------------
# elementwise passes (in x's dtype; coefficients already cast)


def _forward_apply_planes(x3, nseg, nchunks, mean, scale, shift, y3):
    N, C, S = x3.shape
    units = N * C * nseg
    for t in prange(nchunks):
        for u in range(units * t // nchunks, units * (t + 1) // nchunks):
            n, c, s0, s1 = _piece(u, nseg, C, S)
            _affine(x3[n, c, s0:s1], mean[c], scale[c], shift[c],
                    y3[n, c, s0:s1])


def _forward_apply_rows(x2, nchunks, mean, scale, shift, y2):
    N, CS = x2.shape
    for t in prange(nchunks):
        for r in range(N * t // nchunks, N * (t + 1) // nchunks):
            _affine_cols(x2[r], mean, scale, shift, y2[r])


def _backward_apply_planes(dy3, x3, nseg, nchunks, mean, mean_dy, k, g, dx3):
    N, C, S = x3.shape
    units = N * C * nseg
    for t in prange(nchunks):
        for u in range(units * t // nchunks, units * (t + 1) // nchunks):
            n, c, s0, s1 = _piece(u, nseg, C, S)
            _dx(dy3[n, c, s0:s1], x3[n, c, s0:s1], mean[c], mean_dy[c], k[c],
                g[c], dx3[n, c, s0:s1])


def _backward_apply_rows(dy2, x2, nchunks, mean, mean_dy, k, g, dx2):
    N, CS = x2.shape
    for t in prange(nchunks):
        for r in range(N * t // nchunks, N * (t + 1) // nchunks):
            _dx_cols(dy2[r], x2[r], mean, mean_dy, k, g, dx2[r])


_forward_apply_planes_serial, _forward_apply_planes_parallel = \
    _serial_and_parallel(_forward_apply_planes)
_forward_apply_rows_serial, _forward_apply_rows_parallel = \
    _serial_and_parallel(_forward_apply_rows)
_backward_apply_planes_serial, _backward_apply_planes_parallel = \
    _serial_and_parallel(_backward_apply_planes)
_backward_apply_rows_serial, _backward_apply_rows_parallel = \
    _serial_and_parallel(_backward_apply_rows)


# ---------------------------------------------------------------------------
# backward reductions


def _backward_reduce_planes(dy3, x3, nseg, nchunks, mean, sum_dy, sum_dy_xmu):
    N, C, S = x3.shape
    units = N * C * nseg
    pd = np.zeros((nchunks, C))
    px = np.zeros((nchunks, C))
    for t in prange(nchunks):
        for u in range(units * t // nchunks, units * (t + 1) // nchunks):
            n, c, s0, s1 = _piece(u, nseg, C, S)
            a, b = _sum_and_dot_dev(dy3[n, c, s0:s1], x3[n, c, s0:s1], mean[c])
            pd[t, c] += a
            px[t, c] += b
    for c in range(C):
        td = 0.0
        tx = 0.0
        for t in range(nchunks):
            td += pd[t, c]
            tx += px[t, c]
        sum_dy[c] = td
        sum_dy_xmu[c] = tx


def _backward_reduce_rows(dy2, x2, C, nchunks, mean_col, sum_dy, sum_dy_xmu):
    N, CS = x2.shape
    S = CS // C
    pd = np.zeros((nchunks, CS))
    px = np.zeros((nchunks, CS))
    for t in prange(nchunks):
        r0 = N * t // nchunks
        r1 = N * (t + 1) // nchunks
        _add_rows_sum_and_dot_dev(dy2[r0:r1], x2[r0:r1], mean_col, pd[t], px[t])
    for c in range(C):
        td = 0.0
        tx = 0.0
        for t in range(nchunks):
            for s in range(S):
                td += pd[t, c * S + s]
                tx += px[t, c * S + s]
        sum_dy[c] = td
        sum_dy_xmu[c] = tx


_backward_reduce_planes_serial, _backward_reduce_planes_parallel = \
    _serial_and_parallel(_backward_reduce_planes)
_backward_reduce_rows_serial, _backward_reduce_rows_parallel = \
    _serial_and_parallel(_backward_reduce_rows)


# ---------------------------------------------------------------------------
# host wrappers


def _check(name, a, shape, dtype):
    assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
    assert a.flags.c_contiguous, f"{name}: not C-contiguous"


def _check_big(x3, *others):
    assert x3.ndim == 3, f"x3 must be 3-D (N, C, S), got shape {x3.shape}"
    assert x3.dtype in (np.float32, np.float64), f"unsupported dtype {x3.dtype}"
    assert x3.flags.c_contiguous, "x3: not C-contiguous"
    for name, a in others:
        _check(name, a, x3.shape, x3.dtype)


def _check_vectors(C, *vectors):
    for name, v in vectors:
        _check(name, v, (C,), np.float64)


def _nchunks(x3, parts):
    if x3.size < PARALLEL_MIN_ELEMENTS:
        return 1, False
    return max(1, min(get_num_threads(), parts)), True


def _use_rows(S):
    return S < ROWS_MAX_S


def _nseg(S):
    return max(1, -(-S // SEGMENT))


def _columns(v, dtype, S):
    """Per-channel float64 vector -> x's dtype, repeated over the S columns."""
    v = v.astype(dtype)
    return v if S == 1 else np.repeat(v, S)


def bn_stats(x3, count, mean, m2):
    """Per-channel count, mean and M2 = sum (x - mean)^2 of x3 (N, C, S).

    count[c] = N*S, mean[c] = 1/count sum_{n,s} x[n,c,s],
    m2[c] = sum_{n,s} (x[n,c,s] - mean[c])^2, all float64; the biased
    variance of Ioffe & Szegedy (2015) is m2/count. An empty channel gives
    (0, 0, 0), which Chan's merge treats as absent.
    """
    _check_big(x3)
    N, C, S = x3.shape
    _check_vectors(C, ("count", count), ("mean", mean), ("m2", m2))
    if x3.size == 0:
        count[:] = 0.0
        mean[:] = 0.0
        m2[:] = 0.0
        return
    if _use_rows(S):
        nchunks, par = _nchunks(x3, N)
        block = max(MIN_ROW_BLOCK, ROW_BLOCK_BYTES // (C * S * x3.itemsize))
        f = _stats_rows_parallel if par else _stats_rows_serial
        f(x3.reshape(N, C * S), C, block, nchunks, count, mean, m2)
    else:
        nseg = _nseg(S)
        nchunks, par = _nchunks(x3, N * C * nseg)
        f = _stats_planes_parallel if par else _stats_planes_serial
        f(x3, nseg, nchunks, count, mean, m2)


def bn_forward_apply(x3, mean, scale, shift, y3):
    """y3 = (x3 - mean[c]) * scale[c] + shift[c], computed in x3's dtype.

    With scale = gamma * invstd and shift = beta this is the BatchNorm
    transform y = gamma * (x - mean) / sqrt(var + eps) + beta
    (Ioffe & Szegedy 2015, Algorithm 1).
    """
    _check_big(x3, ("y3", y3))
    N, C, S = x3.shape
    _check_vectors(C, ("mean", mean), ("scale", scale), ("shift", shift))
    if x3.size == 0:
        return
    dt = x3.dtype
    if _use_rows(S):
        nchunks, par = _nchunks(x3, N)
        f = _forward_apply_rows_parallel if par else _forward_apply_rows_serial
        f(x3.reshape(N, C * S), nchunks, _columns(mean, dt, S),
          _columns(scale, dt, S), _columns(shift, dt, S), y3.reshape(N, C * S))
    else:
        nseg = _nseg(S)
        nchunks, par = _nchunks(x3, N * C * nseg)
        f = _forward_apply_planes_parallel if par else _forward_apply_planes_serial
        f(x3, nseg, nchunks, mean.astype(dt), scale.astype(dt),
          shift.astype(dt), y3)


def bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu):
    """Per-channel sum_dy[c] = sum dy and sum_dy_xmu[c] = sum dy * (x - mean[c]).

    Accumulated in float64. These are the two reductions of the BatchNorm
    backward pass (Ioffe & Szegedy 2015): dbeta = sum dy,
    dgamma = invstd * sum dy*(x - mean).
    """
    _check_big(x3, ("dy3", dy3))
    N, C, S = x3.shape
    _check_vectors(C, ("mean", mean), ("sum_dy", sum_dy),
                   ("sum_dy_xmu", sum_dy_xmu))
    if x3.size == 0:
        sum_dy[:] = 0.0
        sum_dy_xmu[:] = 0.0
        return
    if _use_rows(S):
        nchunks, par = _nchunks(x3, N)
        f = _backward_reduce_rows_parallel if par else _backward_reduce_rows_serial
        mean_col = mean if S == 1 else np.repeat(mean, S)
        f(dy3.reshape(N, C * S), x3.reshape(N, C * S), C, nchunks, mean_col,
          sum_dy, sum_dy_xmu)
    else:
        nseg = _nseg(S)
        nchunks, par = _nchunks(x3, N * C * nseg)
        f = _backward_reduce_planes_parallel if par else _backward_reduce_planes_serial
        f(dy3, x3, nseg, nchunks, mean, sum_dy, sum_dy_xmu)


def bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx3):
    """dx3 = (dy3 - mean_dy[c] - (x3 - mean[c]) * k[c]) * g[c], in x3's dtype.

    Training (Ioffe & Szegedy 2015): mean_dy = sum_dy/m,
    k = sum_dy_xmu/m * invstd^2, g = gamma * invstd, which is
    dx = gamma*invstd/m * (m*dy - sum(dy) - xhat*sum(dy*xhat)).
    Eval (fixed statistics): mean_dy = 0, k = 0.
    """
    _check_big(x3, ("dy3", dy3), ("dx3", dx3))
    N, C, S = x3.shape
    _check_vectors(C, ("mean", mean), ("mean_dy", mean_dy), ("k", k), ("g", g))
    if x3.size == 0:
        return
    dt = x3.dtype
    if _use_rows(S):
        nchunks, par = _nchunks(x3, N)
        f = _backward_apply_rows_parallel if par else _backward_apply_rows_serial
        f(dy3.reshape(N, C * S), x3.reshape(N, C * S), nchunks,
          _columns(mean, dt, S), _columns(mean_dy, dt, S), _columns(k, dt, S),
          _columns(g, dt, S), dx3.reshape(N, C * S))
    else:
        nseg = _nseg(S)
        nchunks, par = _nchunks(x3, N * C * nseg)
        f = _backward_apply_planes_parallel if par else _backward_apply_planes_serial
        f(dy3, x3, nseg, nchunks, mean.astype(dt), mean_dy.astype(dt),
          k.astype(dt), g.astype(dt), dx3)
