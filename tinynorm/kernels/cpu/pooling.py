"""Max, average and adaptive-average 2-D pooling kernels on NCHW arrays.

Output sizes come from the caller (see :func:`pool_output_size`); windows that
run past the padded input are clipped as in PyTorch. Each ``(n, c)`` plane is
handled by one thread, so the backward scatters are race-free.
"""

import numpy as np
from numba import prange, uint64

from . import host
from .jit import njit, serial_and_parallel
from .windows import tap_ranges

PARALLEL_THRESHOLD = 1 << 15
"""Work size (input elements) from which the ``prange`` kernels run."""


def pool_output_size(in_size, kernel, stride, padding=0, dilation=1,
                     ceil_mode=False):
    """PyTorch's pooling output size; with ``ceil_mode`` the last window must
    start inside the input or the left padding."""
    span = in_size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= in_size + padding:
        out -= 1
    return out


@njit
def _avg_windows(n_out, size, k, s, p):
    """Per output index: clipped [start, end) and the padded window length."""
    r = np.empty((n_out, 3), np.int64)
    for o in range(n_out):
        start = o * s - p
        end = min(start + k, size + p)
        r[o, 2] = end - start
        r[o, 0] = max(start, 0)
        r[o, 1] = min(end, size)
    return r


@njit
def _adaptive_windows(n_out, size):
    """Per output index: ``[floor(o*size/n_out), ceil((o+1)*size/n_out))``
    and its length."""
    r = np.empty((n_out, 3), np.int64)
    for o in range(n_out):
        r[o, 0] = (o * size) // n_out
        r[o, 1] = ((o + 1) * size + n_out - 1) // n_out
        r[o, 2] = r[o, 1] - r[o, 0]
    return r


# Flat views are indexed with uint64: it drops Numba's negative-index
# wraparound select from the inner loops.
@njit(inline="always")
def _max_tap(xf, yf, af, xb, q, k0, step, lo, hi):
    """Fold one tap into a row of running maxima, branch-free so that it
    vectorizes (``step`` is a literal at the call sites that matter)."""
    for o in range(lo, hi):
        k = k0 + o * step
        v = xf[uint64(xb + k)]
        b = yf[uint64(q + o)]
        a = af[uint64(q + o)]
        take = (v > b) | (v != v) | (a < 0)
        yf[uint64(q + o)] = v if take else b
        af[uint64(q + o)] = k if take else a


def _max_fwd_body(x, sh, sw, ph, pw, dh, dw, th, tw, y, argmax):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    kh, kw = th.shape[0], tw.shape[0]
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    af = argmax.reshape(-1)
    for p in prange(N * C):
        xb = p * H * W
        for oh in range(OH):
            q = (p * OH + oh) * OW
            for ow in range(OW):
                yf[uint64(q + ow)] = -np.inf
                af[uint64(q + ow)] = -1
            # Taps in row-major order per output, as PyTorch scans the window.
            for i in range(kh):
                if oh < th[i, 0] or oh >= th[i, 1]:
                    continue
                row = (oh * sh - ph + i * dh) * W
                for j in range(kw):
                    k0 = row + j * dw - pw
                    if sw == 1:
                        _max_tap(xf, yf, af, xb, q, k0, 1, tw[j, 0], tw[j, 1])
                    elif sw == 2:
                        _max_tap(xf, yf, af, xb, q, k0, 2, tw[j, 0], tw[j, 1])
                    else:
                        _max_tap(xf, yf, af, xb, q, k0, sw, tw[j, 0], tw[j, 1])


@njit(inline="always")
def _window_max_exact(xp, h0, w0, kh, kw, W):
    """PyTorch's scan: a later value wins if it is larger or NaN."""
    best = xp[h0, w0]
    arg = h0 * W + w0
    for i in range(kh):
        for j in range(kw):
            v = xp[h0 + i, w0 + j]
            if v > best or v != v:
                best = v
                arg = (h0 + i) * W + w0 + j
    return best, arg


def _max_fwd_dense_body(x, kh, kw, sh, sw, y, argmax):
    """Windows without padding or dilation that lie inside the plane.

    The scan uses one comparison per tap, ``not (v <= best)``, which LLVM
    keeps as a branch-free select (the two-comparison NaN test became
    mispredicting branches on random data). It equals PyTorch's
    rule unless the window holds a NaN, so such windows are rescanned exactly.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in prange(N):
        for c in range(C):
            xp = x[n, c]
            yp = y[n, c]
            ap = argmax[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    h0 = oh * sh
                    w0 = ow * sw
                    best = xp[h0, w0]
                    arg = h0 * W + w0
                    nan = best != best
                    for i in range(kh):
                        for j in range(kw):
                            v = xp[h0 + i, w0 + j]
                            take = not (v <= best)
                            best = v if take else best
                            arg = (h0 + i) * W + w0 + j if take else arg
                            nan |= v != v
                    if nan:
                        best, arg = _window_max_exact(xp, h0, w0, kh, kw, W)
                    yp[oh, ow] = best
                    ap[oh, ow] = arg


def _max_bwd_body(dy, argmax, dx):
    N, C, H, W = dx.shape
    P = dy.shape[2] * dy.shape[3]
    HW = H * W
    gf = dy.reshape(-1)
    af = argmax.reshape(-1)
    dxf = dx.reshape(-1)
    for p in prange(N * C):
        xb = p * HW
        for k in range(HW):
            dxf[uint64(xb + k)] = 0
        for q in range(p * P, (p + 1) * P):
            a = af[uint64(q)]
            if a >= 0:
                dxf[uint64(xb + a)] += gf[uint64(q)]


@njit
def _avg_window(hr, wr, oh, ow, count_include_pad):
    """Rows [hs, he) and columns [ws, we) of output (oh, ow)'s window, and its divisor."""
    hs, he, ws, we = hr[oh, 0], hr[oh, 1], wr[ow, 0], wr[ow, 1]
    div = hr[oh, 2] * wr[ow, 2] if count_include_pad else (he - hs) * (we - ws)
    return hs, he, ws, we, div


def _avg_fwd_body(x, hr, wr, count_include_pad, y):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for p in prange(N * C):
        xb = p * H * W
        q = p * OH * OW
        for oh in range(OH):
            for ow in range(OW):
                hs, he, ws, we, div = _avg_window(hr, wr, oh, ow, count_include_pad)
                s = 0.0
                for h in range(hs, he):
                    row = xb + h * W
                    for w in range(ws, we):
                        s += xf[uint64(row + w)]
                yf[uint64(q)] = s / div if hs < he and ws < we else 0.0
                q += 1


def _avg_bwd_body(dy, hr, wr, count_include_pad, dx):
    N, C, H, W = dx.shape
    OH, OW = dy.shape[2], dy.shape[3]
    gf = dy.reshape(-1)
    dxf = dx.reshape(-1)
    for p in prange(N * C):
        xb = p * H * W
        for k in range(H * W):
            dxf[uint64(xb + k)] = 0
        q = p * OH * OW
        for oh in range(OH):
            for ow in range(OW):
                hs, he, ws, we, div = _avg_window(hr, wr, oh, ow, count_include_pad)
                if hs < he and ws < we:
                    g = gf[uint64(q)] / div
                    for h in range(hs, he):
                        row = xb + h * W
                        for w in range(ws, we):
                            dxf[uint64(row + w)] += g
                q += 1


_max_fwd_ser, _max_fwd_par = serial_and_parallel(_max_fwd_body)
_max_dense_ser, _max_dense_par = serial_and_parallel(_max_fwd_dense_body)
_max_bwd_ser, _max_bwd_par = serial_and_parallel(_max_bwd_body)
_avg_fwd_ser, _avg_fwd_par = serial_and_parallel(_avg_fwd_body)
_avg_bwd_ser, _avg_bwd_par = serial_and_parallel(_avg_bwd_body)


def _pick(par, ser, work):
    return par if work >= PARALLEL_THRESHOLD else ser


def _input(a, name):
    a = np.ascontiguousarray(a)
    host.check_float(a, f"{name} must be")
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got {a.shape}")
    return a


def _output(name, arr, shape, dtype):
    if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[:len(shape)] != shape:
        raise ValueError(f"{name} must be a 4-D array starting with {shape}, got "
                         f"{getattr(arr, 'shape', type(arr))}")
    host.check_output(name, arr, dtype)


def _ints(*args):
    return tuple(int(a) for a in args)


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, y, argmax):
    """``y`` = window maxima of ``x``; ``argmax`` = their flat ``h*W + w``
    in the plane (first max wins, a NaN wins and propagates; -1 for a window
    with no input element). Output size is taken from ``y``."""
    x = _input(x, "x")
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw = _ints(kh, kw, sh, sw, ph, pw, dh, dw)
    _output("y", y, (N, C), x.dtype)
    _output("argmax", argmax, y.shape, np.dtype(np.int64))
    work = max(x.size, y.size * kh * kw)
    OH, OW = y.shape[2], y.shape[3]
    if ph == pw == 0 and dh == dw == 1 and (OH - 1) * sh + kh <= H and (OW - 1) * sw + kw <= W:
        _pick(_max_dense_par, _max_dense_ser, work)(x, kh, kw, sh, sw, y, argmax)
        return y, argmax
    th = tap_ranges(OH, H, kh, sh, ph, dh)
    tw = tap_ranges(OW, W, kw, sw, pw, dw)
    _pick(_max_fwd_par, _max_fwd_ser, work)(x, sh, sw, ph, pw, dh, dw, th, tw, y, argmax)
    return y, argmax


def max_pool2d_backward(dy, argmax, dx):
    """``dx`` (overwritten) = ``dy`` scattered to the ``argmax`` positions
    (as written by :func:`max_pool2d_forward`; they are not range-checked)."""
    dy = _input(dy, "dy")
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    if argmax.shape != dy.shape:
        raise ValueError(f"argmax shape {argmax.shape} != dy shape {dy.shape}")
    _output("dx", dx, dy.shape[:2], dy.dtype)
    _pick(_max_bwd_par, _max_bwd_ser, dx.size + dy.size)(dy, argmax, dx)
    return dx


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, count_include_pad, y):
    """``y`` = window sums of ``x`` over PyTorch's divisor: the padded window
    size (clipped to ``H + ph``) if ``count_include_pad``, else the number of
    input elements in it. Output size is taken from ``y``."""
    x = _input(x, "x")
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw = _ints(kh, kw, sh, sw, ph, pw)
    _output("y", y, (N, C), x.dtype)
    hr = _avg_windows(y.shape[2], H, kh, sh, ph)
    wr = _avg_windows(y.shape[3], W, kw, sw, pw)
    kernel = _pick(_avg_fwd_par, _avg_fwd_ser, max(x.size, y.size * kh * kw))
    kernel(x, hr, wr, bool(count_include_pad), y)
    return y


def avg_pool2d_backward(dy, kh, kw, sh, sw, ph, pw, count_include_pad, dx):
    """Adjoint of :func:`avg_pool2d_forward`; ``dx`` is overwritten."""
    dy = _input(dy, "dy")
    N, C, OH, OW = dy.shape
    kh, kw, sh, sw, ph, pw = _ints(kh, kw, sh, sw, ph, pw)
    _output("dx", dx, (N, C), dy.dtype)
    hr = _avg_windows(OH, dx.shape[2], kh, sh, ph)
    wr = _avg_windows(OW, dx.shape[3], kw, sw, pw)
    kernel = _pick(_avg_bwd_par, _avg_bwd_ser, max(dx.size, dy.size * kh * kw))
    kernel(dy, hr, wr, bool(count_include_pad), dx)
    return dx


def adaptive_avg_pool2d_forward(x, y):
    """``y[o]`` = mean of ``x`` over ``[floor(o*H/OH), ceil((o+1)*H/OH))``
    (same along W); output size is taken from ``y``."""
    x = _input(x, "x")
    N, C, H, W = x.shape
    _output("y", y, (N, C), x.dtype)
    hr = _adaptive_windows(y.shape[2], H)
    wr = _adaptive_windows(y.shape[3], W)
    _pick(_avg_fwd_par, _avg_fwd_ser, x.size + y.size)(x, hr, wr, False, y)
    return y


def adaptive_avg_pool2d_backward(dy, dx):
    """Adjoint of :func:`adaptive_avg_pool2d_forward`; ``dx`` is overwritten."""
    dy = _input(dy, "dy")
    N, C, OH, OW = dy.shape
    _output("dx", dx, (N, C), dy.dtype)
    hr = _adaptive_windows(OH, dx.shape[2])
    wr = _adaptive_windows(OW, dx.shape[3])
    _pick(_avg_bwd_par, _avg_bwd_ser, dx.size + dy.size)(dy, hr, wr, False, dx)
    return dx
