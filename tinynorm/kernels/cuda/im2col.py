"""im2col / col2im kernels for CUDA (numba.cuda), mirroring kernels/cpu/im2col.py.

``cols`` (C*kh*kw, N*OH*OW) unfolds x (N, C, H, W) so that one GEMM with the
weight reshaped to (Cout, C*kh*kw) convolves the whole batch:

    cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]

(0 outside the input); col2im is its adjoint, dx[n, c, h, w] = the sum of the
cols entries read from (h, w).

Same functions, arguments and meaning as tinynorm.kernels.cpu.im2col, plus a
keyword `threads` (threads per block, a power of two up to 1024):

    im2col   one thread per cols element (grid-stride); consecutive threads
             write consecutive columns, so the stores coalesce
    col2im   a gather: one thread per dx element sums, in float64 and in tap
             order (i, j), the entries whose (oh, ow) satisfy
             oh*sh - ph + i*dh = h and ow*sw - pw + j*dw = w; deterministic,
             no atomics
"""
import numpy as np
from numba import cuda, float64

from ..cpu.im2col import _geometry, conv_output_size
from .host import (Outputs as _Outputs, as_array as _as_array,
                   flat as _flat, grid as _grid, launch as _launch,
                   per_dtype as _per_dtype, threads_or_default as _threads,
                   c_contiguous as _c_contiguous, contiguous_device as _input)

__all__ = ["conv_output_size", "im2col", "col2im"]


@_per_dtype
def _im2col_kernel(cast):
    @cuda.jit
    def kernel(x, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, cols):
        P = OH * OW
        NP = N * P
        K = kh * kw
        for idx in range(cuda.grid(1), C * K * NP, cuda.gridsize(1)):
            row = idx // NP
            col = idx - row * NP
            c = row // K
            t = row - c * K
            i = t // kw
            j = t - i * kw
            n = col // P
            r = col - n * P
            oh = r // OW
            ow = r - oh * OW
            h = oh * sh - ph + i * dh
            w = ow * sw - pw + j * dw
            if h >= 0 and h < H and w >= 0 and w < W:
                cols[idx] = x[((n * C + c) * H + h) * W + w]
            else:
                cols[idx] = cast(0)

    return kernel


@_per_dtype
def _col2im_kernel(cast):
    @cuda.jit
    def kernel(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, dx):
        P = OH * OW
        NP = N * P
        K = kh * kw
        for idx in range(cuda.grid(1), N * C * H * W, cuda.gridsize(1)):
            w = idx % W
            t = idx // W
            h = t % H
            t //= H
            c = t % C
            n = t // C
            base = c * K * NP + n * P
            acc = float64(0.0)
            for i in range(kh):
                a = h + ph - i * dh
                if a < 0:
                    break
                oh = a // sh
                if oh * sh != a or oh >= OH:
                    continue
                for j in range(kw):
                    b = w + pw - j * dw
                    if b < 0:
                        break
                    ow = b // sw
                    if ow * sw != b or ow >= OW:
                        continue
                    acc += cols[base + (i * kw + j) * NP + oh * OW + ow]
            dx[idx] = cast(acc)

    return kernel


# ---------------------------------------------------------------------------
# host side


def _check_dtype(a):
    if np.dtype(a.dtype) not in (np.float32, np.float64):
        raise TypeError(f"expected float32 or float64, got {a.dtype}")


def _check_out(name, arr, shape, dtype):
    if arr is None or tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must be an array of shape {tuple(shape)}, got "
                         f"{getattr(arr, 'shape', type(arr))}")
    if np.dtype(arr.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if not _c_contiguous(arr) or (isinstance(arr, np.ndarray) and not arr.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable")


def swap_leading(a, bias, out):
    """``out[j, i, :] = a[i, j, :] (+ bias[i])``: the CPU kernel's layout change, as one
    array-module copy (CuPy's elementwise kernel on the GPU); returns out."""
    _check_dtype(a)
    I, J, S = a.shape
    _check_out("out", out, (J, I, S), a.dtype)
    swapped = a.transpose(1, 0, 2)
    out[...] = swapped if bias is None else swapped + bias.reshape(1, I, 1)
    return out


def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, cols, threads=None):
    """Unfold ``x`` (N, C, H, W) into ``cols`` (C*kh*kw, N*OH*OW); returns cols.

    ``cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] =
    x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]`` (0 outside the input).
    """
    t = _threads(threads)
    x, cols = _as_array(x), _as_array(cols)
    _check_dtype(x)
    if len(x.shape) != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got {x.shape}")
    N, C, H, W = (int(v) for v in x.shape)
    kh, kw, sh, sw, ph, pw, dh, dw = map(int, (kh, kw, sh, sw, ph, pw, dh, dw))
    OH, OW = _geometry(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    _check_out("cols", cols, (C * kh * kw, N * OH * OW), x.dtype)
    size = C * kh * kw * N * OH * OW
    if size == 0:
        return cols
    out = _Outputs(cols)
    _launch(_im2col_kernel(np.dtype(x.dtype).type), _grid(size, t), t, _flat(_input(x)),
            N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, _flat(out.device[0]))
    out.copy_back()
    return cols


def col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, dx, threads=None):
    """Adjoint of :func:`im2col`: ``dx`` (N, C, H, W) = sum of the ``cols``
    entries read from each position (overwritten); returns dx."""
    t = _threads(threads)
    cols, dx = _as_array(cols), _as_array(dx)
    _check_dtype(cols)
    N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw = map(
        int, (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw))
    OH, OW = _geometry(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    if tuple(cols.shape) != (C * kh * kw, N * OH * OW):
        raise ValueError(f"cols must have shape {(C * kh * kw, N * OH * OW)}, "
                         f"got {tuple(cols.shape)}")
    _check_out("dx", dx, (N, C, H, W), cols.dtype)
    size = N * C * H * W
    if size == 0:
        return dx
    out = _Outputs(dx)
    _launch(_col2im_kernel(np.dtype(cols.dtype).type), _grid(size, t), t, _flat(_input(cols)),
            N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, _flat(out.device[0]))
    out.copy_back()
    return dx
