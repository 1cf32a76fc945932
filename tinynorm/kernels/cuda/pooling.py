"""Max, average and adaptive-average 2-D pooling kernels for CUDA (numba.cuda), mirroring
kernels/cpu/pooling.py, on NCHW arrays; output sizes come from the caller's y
(see pool_output_size), windows past the padded input are clipped as in PyTorch:

    max       y = max over the window's taps in row-major order: a later tap
              wins if it is larger or NaN (first maximum wins, the last NaN
              wins); argmax = its flat h*W + w in the plane, -1 (and y = -inf)
              for a window holding no input element
    avg       y = sum over the clipped window / divisor, the divisor being the
              padded window size (clipped to H + ph) with count_include_pad,
              else the number of input elements in it; 0 for an empty window
    adaptive  y[o] = mean over [floor(o*H/OH), ceil((o+1)*H/OH)) (same along W)

Same functions, arguments and meaning as tinynorm.kernels.cpu.pooling, plus a
keyword `threads` (threads per block, a power of two up to 1024). Forward
passes run one thread per output element (grid-stride; window sums in
float64). Backward passes gather, one thread per dx element, in float64 and
in output order (oh, ow), so they are deterministic and need no float atomics:

    avg, adaptive  the outputs whose windows hold (h, w), found arithmetically
    max            the outputs whose argmax is (h, w): the outputs are first
                   linked into one list per input position (integer
                   cuda.atomic.exch), and each list is then summed in
                   ascending output index
"""
import math

import numpy as np
from numba import cuda, float64

from ..cpu.pooling import pool_output_size
from .host import (Outputs as _Outputs, as_array as _as_array,
                   flat as _flat, grid as _grid, launch as _launch,
                   per_dtype as _per_dtype, threads_or_default as _threads,
                   c_contiguous as _c_contiguous, contiguous_device as _device,
                   workspace as _workspace)

__all__ = ["pool_output_size", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward"]


@cuda.jit(device=True)
def _output_position(q, P, OW):
    """(plane, oh, ow) of the flat output index q, P = OH*OW."""
    p = q // P
    r = q - p * P
    oh = r // OW
    return p, oh, r - oh * OW


@cuda.jit(device=True)
def _window(o, size, k, s, p, n_out, adaptive):
    """Clipped [start, end) of output o and the divisor length (padded or adaptive)."""
    if adaptive:
        start = (o * size) // n_out
        end = ((o + 1) * size + n_out - 1) // n_out
        return start, end, end - start
    start = o * s - p
    end = min(start + k, size + p)
    return max(start, 0), min(end, size), end - start


@cuda.jit(device=True)
def _candidates(h, size, k, s, p, n_out, adaptive):
    """A range [lo, hi) of outputs holding every output whose window may contain h."""
    if adaptive:
        lo = (h * n_out) // size
        hi = ((h + 1) * n_out + size - 1) // size
    else:
        a = h + p - k + 1
        lo = 0 if a <= 0 else (a + s - 1) // s
        hi = (h + p) // s + 1
    return max(lo, 0), min(hi, n_out)


@_per_dtype
def _max_forward_kernel(cast):
    @cuda.jit
    def kernel(x, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, y, argmax):
        P = OH * OW
        for q in range(cuda.grid(1), NC * P, cuda.gridsize(1)):
            p, oh, ow = _output_position(q, P, OW)
            xb = p * H * W
            best = cast(-math.inf)
            arg = -1
            for i in range(kh):
                h = oh * sh - ph + i * dh
                if h < 0 or h >= H:
                    continue
                for j in range(kw):
                    w = ow * sw - pw + j * dw
                    if w < 0 or w >= W:
                        continue
                    v = x[xb + h * W + w]
                    if v > best or v != v or arg < 0:
                        best = v
                        arg = h * W + w
            y[q] = best
            argmax[q] = arg

    return kernel


@cuda.jit
def _max_reset_kernel(head, n):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        head[i] = -1


@cuda.jit
def _max_link_kernel(argmax, NC, P, HW, head, nxt):
    for q in range(cuda.grid(1), NC * P, cuda.gridsize(1)):
        a = argmax[q]
        if a >= 0 and a < HW:
            nxt[q] = cuda.atomic.exch(head, (q // P) * HW + a, q)


@_per_dtype
def _max_gather_kernel(cast):
    @cuda.jit
    def kernel(dy, n, head, nxt, dx):
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            acc = float64(0.0)
            prev = -1
            while True:
                nearest = -1
                q = head[i]
                while q >= 0:
                    if q > prev and (nearest < 0 or q < nearest):
                        nearest = q
                    q = nxt[q]
                if nearest < 0:
                    break
                acc += dy[nearest]
                prev = nearest
            dx[i] = cast(acc)

    return kernel


@_per_dtype
def _avg_forward_kernel(cast):
    @cuda.jit
    def kernel(x, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw, include_pad, adaptive, y):
        P = OH * OW
        for q in range(cuda.grid(1), NC * P, cuda.gridsize(1)):
            p, oh, ow = _output_position(q, P, OW)
            hs, he, hl = _window(oh, H, kh, sh, ph, OH, adaptive)
            ws, we, wl = _window(ow, W, kw, sw, pw, OW, adaptive)
            if hs < he and ws < we:
                div = hl * wl if include_pad else (he - hs) * (we - ws)
                s = float64(0.0)
                for h in range(hs, he):
                    row = (p * H + h) * W
                    for w in range(ws, we):
                        s += x[row + w]
                y[q] = cast(s / div)
            else:
                y[q] = cast(0)

    return kernel


@_per_dtype
def _avg_backward_kernel(cast):
    @cuda.jit
    def kernel(dy, NC, H, W, OH, OW, kh, kw, sh, sw, ph, pw, include_pad, adaptive, dx):
        for idx in range(cuda.grid(1), NC * H * W, cuda.gridsize(1)):
            w = idx % W
            t = idx // W
            h = t % H
            p = t // H
            oh_lo, oh_hi = _candidates(h, H, kh, sh, ph, OH, adaptive)
            ow_lo, ow_hi = _candidates(w, W, kw, sw, pw, OW, adaptive)
            acc = float64(0.0)
            for oh in range(oh_lo, oh_hi):
                hs, he, hl = _window(oh, H, kh, sh, ph, OH, adaptive)
                if h < hs or h >= he:
                    continue
                for ow in range(ow_lo, ow_hi):
                    ws, we, wl = _window(ow, W, kw, sw, pw, OW, adaptive)
                    if w < ws or w >= we:
                        continue
                    div = hl * wl if include_pad else (he - hs) * (we - ws)
                    acc += float64(dy[(p * OH + oh) * OW + ow]) / div
            dx[idx] = cast(acc)

    return kernel


# ---------------------------------------------------------------------------
# host side


def _input(a, name):
    a = _as_array(a)
    if np.dtype(a.dtype) not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if len(a.shape) != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got {tuple(a.shape)}")
    return a


def _output(name, arr, shape, dtype):
    arr = _as_array(arr)
    if arr is None or len(arr.shape) != 4 or tuple(arr.shape[:len(shape)]) != tuple(shape):
        raise ValueError(f"{name} must be a 4-D array starting with {tuple(shape)}, got "
                         f"{getattr(arr, 'shape', type(arr))}")
    if np.dtype(arr.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if not _c_contiguous(arr) or (isinstance(arr, np.ndarray) and not arr.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable")
    return arr


def _workspace_int64(size, like):
    return _workspace(size, np.int64, like)


def _ints(*args):
    return tuple(int(a) for a in args)


def _check_geometry(kh, kw, sh, sw, ph, pw, dh=1, dw=1):
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError("kernel, stride and dilation must be >= 1, padding >= 0")


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, y, argmax, threads=None):
    """``y`` = window maxima of ``x``; ``argmax`` = their flat ``h*W + w``
    in the plane (first max wins, a NaN wins and propagates; -1 for a window
    with no input element). Output size is taken from ``y``."""
    t = _threads(threads)
    x = _input(x, "x")
    N, C, H, W = (int(v) for v in x.shape)
    kh, kw, sh, sw, ph, pw, dh, dw = _ints(kh, kw, sh, sw, ph, pw, dh, dw)
    _check_geometry(kh, kw, sh, sw, ph, pw, dh, dw)
    yd = _output("y", y, (N, C), x.dtype)
    ad = _output("argmax", argmax, tuple(yd.shape), np.int64)
    OH, OW = int(yd.shape[2]), int(yd.shape[3])
    size = N * C * OH * OW
    if size == 0:
        return y, argmax
    out = _Outputs(yd, ad)
    src = _flat(_device(x)) if N * C * H * W else cuda.device_array(1, x.dtype)
    _launch(_max_forward_kernel(np.dtype(x.dtype).type), _grid(size, t), t, src,
            N * C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw,
            _flat(out.device[0]), _flat(out.device[1]))
    out.copy_back()
    return y, argmax


def max_pool2d_backward(dy, argmax, dx, threads=None):
    """``dx`` (overwritten) = ``dy`` scattered to the ``argmax`` positions
    (as written by :func:`max_pool2d_forward`; entries outside the plane are
    skipped)."""
    t = _threads(threads)
    dy = _input(dy, "dy")
    argmax = _as_array(argmax)
    if isinstance(argmax, np.ndarray):
        argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    if tuple(argmax.shape) != tuple(dy.shape):
        raise ValueError(f"argmax shape {tuple(argmax.shape)} != dy shape {tuple(dy.shape)}")
    if np.dtype(argmax.dtype) != np.int64:
        raise TypeError(f"argmax has dtype {argmax.dtype}, expected int64")
    dxd = _output("dx", dx, tuple(dy.shape[:2]), dy.dtype)
    N, C, OH, OW = (int(v) for v in dy.shape)
    H, W = int(dxd.shape[2]), int(dxd.shape[3])
    n_in, n_out = N * C * H * W, N * C * OH * OW
    if n_in == 0:
        return dx
    out = _Outputs(dxd)
    head = _workspace_int64(n_in, dxd)
    nxt = _workspace_int64(max(n_out, 1), dxd)
    _launch(_max_reset_kernel, _grid(n_in, t), t, head, n_in)
    if n_out:
        _launch(_max_link_kernel, _grid(n_out, t), t, _flat(_device(argmax)), N * C,
                OH * OW, H * W, head, nxt)
    src = _flat(_device(dy)) if n_out else cuda.device_array(1, dy.dtype)
    _launch(_max_gather_kernel(np.dtype(dy.dtype).type), _grid(n_in, t), t, src, n_in,
            head, nxt, _flat(out.device[0]))
    out.copy_back()
    return dx


def _avg(forward, src, dst, window, include_pad, threads):
    """Launch an average-pool kernel with one thread per value of ``dst`` (y forward, dx
    backward); the planes are (H, W) on the input side and (OH, OW) on the output side.
    ``window`` is (kh, kw, sh, sw, ph, pw), or None for the adaptive windows."""
    t = _threads(threads)
    src_name, dst_name = ("x", "y") if forward else ("dy", "dx")
    src = _input(src, src_name)
    dst = _output(dst_name, dst, tuple(src.shape[:2]), src.dtype)
    if window is None:
        window, adaptive = (0, 0, 1, 1, 0, 0), 1
    else:
        window, adaptive = _ints(*window), 0
        _check_geometry(*window)
    kernel = _avg_forward_kernel if forward else _avg_backward_kernel
    x_side, y_side = (src, dst) if forward else (dst, src)
    N, C, H, W = (int(v) for v in x_side.shape)
    OH, OW = int(y_side.shape[2]), int(y_side.shape[3])
    size = N * C * (OH * OW if forward else H * W)
    if size == 0:
        return
    out = _Outputs(dst)
    dtype = np.dtype(src.dtype)
    flat_src = _flat(_device(src)) if src.size else cuda.device_array(1, dtype)
    _launch(kernel(dtype.type), _grid(size, t), t, flat_src, N * C, H, W, OH, OW, *window,
            int(bool(include_pad)), adaptive, _flat(out.device[0]))
    out.copy_back()


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, count_include_pad, y, threads=None):
    """``y`` = window sums of ``x`` over PyTorch's divisor: the padded window
    size (clipped to ``H + ph``) if ``count_include_pad``, else the number of
    input elements in it. Output size is taken from ``y``."""
    _avg(True, x, y, (kh, kw, sh, sw, ph, pw), count_include_pad, threads)
    return y


def avg_pool2d_backward(dy, kh, kw, sh, sw, ph, pw, count_include_pad, dx, threads=None):
    """Adjoint of :func:`avg_pool2d_forward`; ``dx`` is overwritten."""
    _avg(False, dy, dx, (kh, kw, sh, sw, ph, pw), count_include_pad, threads)
    return dx


def adaptive_avg_pool2d_forward(x, y, threads=None):
    """``y[o]`` = mean of ``x`` over ``[floor(o*H/OH), ceil((o+1)*H/OH))``
    (same along W); output size is taken from ``y``."""
    _avg(True, x, y, None, False, threads)
    return y


def adaptive_avg_pool2d_backward(dy, dx, threads=None):
    """Adjoint of :func:`adaptive_avg_pool2d_forward`; ``dx`` is overwritten."""
    _avg(False, dy, dx, None, False, threads)
    return dx
