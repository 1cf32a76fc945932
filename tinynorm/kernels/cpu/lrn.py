"""LRN kernels for the CPU (Numba); the math (d, b, da) is in :mod:`tinynorm.ops.lrn`.

x is viewed as x3 (N, C, S); the window of channel c holds channels c - lo .. c + hi,
lo = size//2, hi = (size-1)//2, zero padded.

    lrn_forward    b (and, on request, the scale d^-beta for the backward pass)
    lrn_backward   da

Both passes slide the channel window over a tile of spatial positions: a
float64 running sum per position gains the square entering the window and
loses the one leaving it, so a channel costs O(1) per element whatever n is.
The running sum is recomputed from scratch every REFRESH channels, and for a
tile row as soon as a slide cancels badly: when a value leaving (or entering)
the window exceeds LOSS times the result (for the squares, the result plus
|k|/|alpha/n|, so that the error is measured against d itself), or when the
result is NaN, so that a NaN or Inf leaves the window when it should and a
NaN in a reaches exactly the outputs whose window holds it. The error of d
thus stays within about LOSS ulps of d.

d^-beta has fast paths: beta = 0.75 as rsqrt(d) * sqrt(rsqrt(d)), beta = 0.5
as rsqrt(d); any other beta calls pow, and then the forward pass can store the
scale so that the backward pass does not call pow again. The backward pass
recomputes d with the same sliding sums, keeps per tile the scale and
t_c = db_c * a_c * d_c^(-beta-1) in scratch rows, and slides the mirrored
window over t (again a float64 running sum). Window sums are float64; d is
rounded to x's dtype before the power, so that float32 inputs get 8-lane
float32 square roots (PyTorch computes the whole op in float32).

Arrays are C-contiguous float32 or float64 (one dtype per call). Every kernel
exists twice, compiled from one body: serial, and parallel with prange over
runs of (sample, tile) pieces; the host wrappers pick the parallel one when
x3 has at least PARALLEL_MIN_ELEMENTS elements. The only fast-math flag is
'reassoc', on the slides; nothing assumes away NaN or Inf.
"""
import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import njit, serial_and_parallel

PARALLEL_MIN_ELEMENTS = 1 << 15
REFRESH = 16
LOSS = 4096.0
FORWARD_TILE = 512
BACKWARD_TILE_BYTES = 1 << 18
MIN_TILE = 16
MAX_TILE = 1024

MODE_075, MODE_05, MODE_POW = 0, 1, 2

_CHECK_MATH = {"reassoc"}


def beta_mode(beta):
    """MODE_075, MODE_05 or MODE_POW: which d^-beta the kernels compute."""
    if beta == 0.75:
        return MODE_075
    if beta == 0.5:
        return MODE_05
    return MODE_POW


# ---------------------------------------------------------------------------
# window sums over rows of a (C, S) plane, columns s0:s0+w


@njit
def _window_sq(a, c0, c1, s0, w, acc):
    """acc[:w] = sum over rows max(c0, 0)..min(c1, C-1) of a[row, s0:s0+w]^2."""
    for i in range(w):
        acc[i] = 0.0
    for c in range(max(c0, 0), min(c1, a.shape[0] - 1) + 1):
        row = a[c, s0:s0 + w]
        for i in range(w):
            v = np.float64(row[i])
            acc[i] += v * v


@njit
def _window(a, c0, c1, w, acc):
    """acc[:w] = sum over rows max(c0, 0)..min(c1, C-1) of a[row, :w]."""
    for i in range(w):
        acc[i] = 0.0
    for c in range(max(c0, 0), min(c1, a.shape[0] - 1) + 1):
        row = a[c]
        for i in range(w):
            acc[i] += np.float64(row[i])


@njit(fastmath=_CHECK_MATH)
def _slide_sq(a, add, sub, s0, w, floor, acc):
    """acc += a[add]^2 - a[sub]^2 over s0:s0+w (a row index outside [0, C) is skipped).

    Returns False when a value leaving the window was not small next to
    floor + acc (cancellation; floor = |k|/|an| measures it against d) or
    when a slid value is NaN.
    """
    C = a.shape[0]
    bad = 0
    if 0 <= add < C and 0 <= sub < C:
        ra = a[add, s0:s0 + w]
        rs = a[sub, s0:s0 + w]
        for i in range(w):
            p = np.float64(ra[i])
            q = np.float64(rs[i])
            v = acc[i] + p * p - q * q
            acc[i] = v
            bad += 0 if q * q <= LOSS * (floor + v) else 1
    elif 0 <= add < C:
        ra = a[add, s0:s0 + w]
        for i in range(w):
            p = np.float64(ra[i])
            acc[i] += p * p
    elif 0 <= sub < C:
        rs = a[sub, s0:s0 + w]
        for i in range(w):
            q = np.float64(rs[i])
            v = acc[i] - q * q
            acc[i] = v
            bad += 0 if q * q <= LOSS * (floor + v) else 1
    return bad == 0


@njit(fastmath=_CHECK_MATH)
def _slide(a, add, sub, w, acc):
    """acc += a[add, :w] - a[sub, :w] (rows outside [0, C) skipped).

    Returns False when an update was not small next to the result
    (cancellation) or a slid value is NaN.
    """
    C = a.shape[0]
    bad = 0
    if 0 <= add < C and 0 <= sub < C:
        ra = a[add]
        rs = a[sub]
        for i in range(w):
            p = np.float64(ra[i])
            q = np.float64(rs[i])
            v = acc[i] + p - q
            acc[i] = v
            bad += 0 if max(abs(p), abs(q)) <= LOSS * abs(v) else 1
    elif 0 <= add < C:
        ra = a[add]
        for i in range(w):
            p = np.float64(ra[i])
            v = acc[i] + p
            acc[i] = v
            bad += 0 if abs(p) <= LOSS * abs(v) else 1
    elif 0 <= sub < C:
        rs = a[sub]
        for i in range(w):
            q = np.float64(rs[i])
            v = acc[i] - q
            acc[i] = v
            bad += 0 if abs(q) <= LOSS * abs(v) else 1
    return bad == 0


@njit
def _sq_sums(a, c, lo, hi, s0, w, floor, acc):
    """acc = window sum of squares of channel c, slid from channel c-1's unless refreshing."""
    if c % REFRESH == 0 or not _slide_sq(a, c + hi, c - 1 - lo, s0, w, floor, acc):
        _window_sq(a, c - lo, c + hi, s0, w, acc)


# ---------------------------------------------------------------------------
# elementwise pieces


@njit
def _scale_row(x, acc, k, an, mode, beta, y):
    dt = x.dtype.type
    one = dt(1.0)
    if mode == MODE_075:
        for i in range(x.shape[0]):
            r = one / np.sqrt(dt(k + an * acc[i]))
            y[i] = x[i] * (r * np.sqrt(r))
    elif mode == MODE_05:
        for i in range(x.shape[0]):
            y[i] = x[i] * (one / np.sqrt(dt(k + an * acc[i])))
    else:
        for i in range(x.shape[0]):
            y[i] = x[i] * dt((k + an * acc[i]) ** -beta)


@njit
def _scale_row_saved(x, acc, k, an, beta, y, sc):
    dt = x.dtype.type
    for i in range(x.shape[0]):
        s = dt((k + an * acc[i]) ** -beta)
        sc[i] = s
        y[i] = x[i] * s


@njit
def _terms(x, dy, acc, k, an, mode, beta, s1, s2):
    """s1 = d^-beta, s2 = dy * x * d^(-beta-1) with d = k + an*acc, in x's dtype."""
    dt = x.dtype.type
    one = dt(1.0)
    if mode == MODE_075:
        for i in range(x.shape[0]):
            d = dt(k + an * acc[i])
            r = one / np.sqrt(d)
            s = r * np.sqrt(r)
            s1[i] = s
            s2[i] = dy[i] * x[i] * s / d
    elif mode == MODE_05:
        for i in range(x.shape[0]):
            d = dt(k + an * acc[i])
            s = one / np.sqrt(d)
            s1[i] = s
            s2[i] = dy[i] * x[i] * s / d
    else:
        for i in range(x.shape[0]):
            d = dt(k + an * acc[i])
            s = dt(d ** -beta)
            s1[i] = s
            s2[i] = dy[i] * x[i] * s / d


@njit
def _terms_saved(x, dy, sc, acc, k, an, s1, s2):
    dt = x.dtype.type
    for i in range(x.shape[0]):
        d = dt(k + an * acc[i])
        s = sc[i]
        s1[i] = s
        s2[i] = dy[i] * x[i] * s / d


@njit
def _dx_row(x, dy, s1, acc, coef, dx):
    for i in range(x.shape[0]):
        dx[i] = dy[i] * s1[i] - coef * x[i] * acc[i]


# ---------------------------------------------------------------------------
# kernels: prange over runs of (sample, tile) pieces


@njit
def _window_params(size, alpha, k):
    """(lo, hi, alpha/size, floor): the window's reach below and above a channel, and the
    floor |k|/|alpha/size| that _slide_sq measures cancellation against."""
    an = alpha / size
    return size // 2, (size - 1) // 2, an, abs(k) / abs(an) if an != 0.0 else np.inf


@njit
def _tile(it, ntiles, tile, S):
    """(sample, first column, width) of work item ``it`` (``ntiles`` tiles per sample)."""
    n = it // ntiles
    s0 = (it - n * ntiles) * tile
    return n, s0, min(tile, S - s0)


def _forward(x3, size, alpha, beta, k, mode, save, tile, nchunks, y3, sc3):
    N, C, S = x3.shape
    lo, hi, an, floor = _window_params(size, alpha, k)
    ntiles = (S + tile - 1) // tile
    for t in prange(nchunks):
        acc = np.empty(tile)
        for it in range(N * ntiles * t // nchunks, N * ntiles * (t + 1) // nchunks):
            n, s0, w = _tile(it, ntiles, tile, S)
            xn = x3[n]
            yn = y3[n]
            for c in range(C):
                _sq_sums(xn, c, lo, hi, s0, w, floor, acc)
                if save:
                    _scale_row_saved(xn[c, s0:s0 + w], acc, k, an, beta, yn[c, s0:s0 + w],
                                     sc3[n, c, s0:s0 + w])
                else:
                    _scale_row(xn[c, s0:s0 + w], acc, k, an, mode, beta, yn[c, s0:s0 + w])


def _backward(dy3, x3, size, alpha, beta, k, mode, saved, tile, nchunks, sc3, dx3):
    N, C, S = x3.shape
    lo, hi, an, floor = _window_params(size, alpha, k)
    coef = 2.0 * alpha * beta / size
    ntiles = (S + tile - 1) // tile
    for t in prange(nchunks):
        acc = np.empty(tile)
        s1 = np.empty((C, tile), x3.dtype)
        s2 = np.empty((C, tile), x3.dtype)
        for it in range(N * ntiles * t // nchunks, N * ntiles * (t + 1) // nchunks):
            n, s0, w = _tile(it, ntiles, tile, S)
            xn = x3[n]
            dyn = dy3[n]
            for c in range(C):
                _sq_sums(xn, c, lo, hi, s0, w, floor, acc)
                if saved:
                    _terms_saved(xn[c, s0:s0 + w], dyn[c, s0:s0 + w], sc3[n, c, s0:s0 + w],
                                 acc, k, an, s1[c], s2[c])
                else:
                    _terms(xn[c, s0:s0 + w], dyn[c, s0:s0 + w], acc, k, an, mode, beta,
                           s1[c], s2[c])
            for j in range(C):
                if j % REFRESH == 0 or not _slide(s2, j + lo, j - hi - 1, w, acc):
                    _window(s2, j - hi, j + lo, w, acc)
                _dx_row(xn[j, s0:s0 + w], dyn[j, s0:s0 + w], s1[j], acc, coef,
                        dx3[n, j, s0:s0 + w])


_forward_serial, _forward_parallel = serial_and_parallel(_forward)
_backward_serial, _backward_parallel = serial_and_parallel(_backward)


# ---------------------------------------------------------------------------
# host wrappers


def _nchunks(x3, items):
    return host.parallel_runs(x3.size, items, PARALLEL_MIN_ELEMENTS, get_num_threads)


def _pieces(N, S, tile):
    return N * ((S + tile - 1) // tile)


def lrn_forward(x3, size, alpha, beta, k, y3, scale3=None):
    """y3 = x3 * d^-beta, d = k + alpha/size * (window sum of x^2 over channels).

    The window of channel c is c - size//2 .. c + (size-1)//2 (zero padded,
    divisor always ``size``), as torch.nn.functional.local_response_norm.
    ``scale3`` (same shape and dtype, optional) receives d^-beta for
    lrn_backward; worth it only when beta has no fast path (see beta_mode).
    """
    host.check_input("x3", x3, "NCS", ("y3", y3))
    assert size >= 1, f"size must be positive, got {size}"
    save = scale3 is not None
    host.check("scale3", scale3, x3.shape, x3.dtype)
    N, C, S = x3.shape
    if x3.size == 0:
        return
    tile = min(FORWARD_TILE, S)
    nchunks, par = _nchunks(x3, _pieces(N, S, tile))
    f = _forward_parallel if par else _forward_serial
    f(x3, int(size), float(alpha), float(beta), float(k), beta_mode(beta), save, tile,
      nchunks, y3, scale3 if save else np.empty((0, 0, 0), x3.dtype))


def lrn_backward(dy3, x3, size, alpha, beta, k, scale3, dx3):
    """dx3 = dy*d^-beta - 2*alpha*beta/size * x * sum_{c: j in window(c)} dy_c x_c d_c^(-beta-1).

    ``scale3`` is the d^-beta that lrn_forward stored, or None to recompute it.
    """
    host.check_input("x3", x3, "NCS", ("dy3", dy3), ("dx3", dx3))
    assert size >= 1, f"size must be positive, got {size}"
    saved = scale3 is not None
    host.check("scale3", scale3, x3.shape, x3.dtype)
    N, C, S = x3.shape
    if x3.size == 0:
        return
    tile = BACKWARD_TILE_BYTES // (C * (16 + 3 * x3.itemsize))
    tile = min(S, max(MIN_TILE, min(MAX_TILE, tile // 8 * 8)))
    nchunks, par = _nchunks(x3, _pieces(N, S, tile))
    f = _backward_parallel if par else _backward_serial
    f(dy3, x3, int(size), float(alpha), float(beta), float(k), beta_mode(beta), saved, tile,
      nchunks, scale3 if saved else np.empty((0, 0, 0), x3.dtype), dx3)
