"""im2col / col2im kernels for 2-D convolution on NCHW arrays.

``cols`` has shape ``(C*kh*kw, N*OH*OW)``: row ``c*kh*kw + i*kw + j`` matches a
weight ``(Cout, C, kh, kw)`` reshaped to ``(Cout, C*kh*kw)``, column
``n*OH*OW + oh*OW + ow``, so ``W2d @ cols`` convolves the whole batch in one
GEMM (and group ``g`` uses rows ``g*Cg*kh*kw:(g+1)*Cg*kh*kw``).
"""

import numpy as np
from numba import prange, uint64

from . import host
from .jit import serial_and_parallel
from .windows import tap_ranges

PARALLEL_THRESHOLD = 1 << 15
"""Work size (elements of ``cols``) from which the ``prange`` kernels run."""


def conv_output_size(in_size, kernel, stride=1, padding=0, dilation=1):
    """``floor((in + 2p - d(k-1) - 1) / s) + 1`` (PyTorch's Conv2d rule)."""
    return (in_size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# The kernels index flat views with uint64: it drops Numba's negative-index
# wraparound select, which otherwise blocks vectorization of the row copies.
def _im2col_body(x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, cols):
    N, C, H, W = x.shape
    K = kh * kw
    P = OH * OW
    NP = N * P
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    contiguous = sw == 1 and sh * W == OW
    hr = tap_ranges(OH, H, kh, sh, ph, dh)
    wr = tap_ranges(OW, W, kw, sw, pw, dw)
    for t in prange(C * N):
        c = t // N
        n = t - c * N
        plane = (n * C + c) * H * W
        for i in range(kh):
            h0 = i * dh - ph
            h_lo = hr[i, 0]
            h_hi = hr[i, 1]
            for j in range(kw):
                w0 = j * dw - pw
                lo = wr[j, 0]
                hi = wr[j, 1]
                dst = (c * K + i * kw + j) * NP + n * P
                if lo >= hi or h_lo >= h_hi:
                    for k in range(P):
                        cf[uint64(dst + k)] = 0
                    continue
                for k in range(h_lo * OW):
                    cf[uint64(dst + k)] = 0
                for k in range(h_hi * OW, P):
                    cf[uint64(dst + k)] = 0
                if contiguous:
                    # Source and destination rows advance by the same step, so
                    # copy one run and then zero the padded columns.
                    src = plane + h0 * W + w0
                    for k in range(h_lo * OW + lo, (h_hi - 1) * OW + hi):
                        cf[uint64(dst + k)] = xf[uint64(src + k)]
                    for oh in range(h_lo, h_hi):
                        q = dst + oh * OW
                        for ow in range(lo):
                            cf[uint64(q + ow)] = 0
                        for ow in range(hi, OW):
                            cf[uint64(q + ow)] = 0
                else:
                    for oh in range(h_lo, h_hi):
                        q = dst + oh * OW
                        src = plane + (oh * sh + h0) * W + w0
                        for ow in range(lo):
                            cf[uint64(q + ow)] = 0
                        for ow in range(lo, hi):
                            cf[uint64(q + ow)] = xf[uint64(src + ow * sw)]
                        for ow in range(hi, OW):
                            cf[uint64(q + ow)] = 0


def _col2im_body(cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, dx):
    N, C, H, W = dx.shape
    K = kh * kw
    P = OH * OW
    NP = N * P
    HW = H * W
    dxf = dx.reshape(-1)
    cf = cols.reshape(-1)
    hr = tap_ranges(OH, H, kh, sh, ph, dh)
    wr = tap_ranges(OW, W, kw, sw, pw, dw)
    for t in prange(C * N):
        c = t // N
        n = t - c * N
        plane = (n * C + c) * HW
        for k in range(HW):
            dxf[uint64(plane + k)] = 0
        for i in range(kh):
            h0 = i * dh - ph
            for j in range(kw):
                w0 = j * dw - pw
                lo = wr[j, 0]
                hi = wr[j, 1]
                dst = (c * K + i * kw + j) * NP + n * P
                for oh in range(hr[i, 0], hr[i, 1]):
                    q = dst + oh * OW
                    src = plane + (oh * sh + h0) * W + w0
                    if sw == 1:
                        for ow in range(lo, hi):
                            dxf[uint64(src + ow)] += cf[uint64(q + ow)]
                    else:
                        for ow in range(lo, hi):
                            dxf[uint64(src + ow * sw)] += cf[uint64(q + ow)]


def _swap_leading_body(a, bias, add, out):
    I, J, S = a.shape
    for t in prange(I * J):
        j = t // I
        i = t - j * I
        src = a[i, j]
        dst = out[j, i]
        if add:
            b = bias[i]
            for s in range(S):
                dst[s] = src[s] + b
        else:
            for s in range(S):
                dst[s] = src[s]


_im2col_ser, _im2col_par = serial_and_parallel(_im2col_body)
_col2im_ser, _col2im_par = serial_and_parallel(_col2im_body)
_swap_ser, _swap_par = serial_and_parallel(_swap_leading_body)


def _check_out(name, arr, shape, dtype):
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        raise ValueError(f"{name} must be an array of shape {shape}, got "
                         f"{getattr(arr, 'shape', type(arr))}")
    host.check_output(name, arr, dtype)


def _geometry(H, W, kh, kw, sh, sw, ph, pw, dh, dw):
    OH = conv_output_size(H, kh, sh, ph, dh)
    OW = conv_output_size(W, kw, sw, pw, dw)
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError("kernel, stride and dilation must be >= 1, padding >= 0")
    if OH < 1 or OW < 1:
        raise ValueError(f"output size ({OH}, {OW}) is too small")
    return OH, OW


def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, cols):
    """Unfold ``x`` (N, C, H, W) into ``cols`` (C*kh*kw, N*OH*OW); returns cols.

    ``cols[c*kh*kw + i*kw + j, n*OH*OW + oh*OW + ow] =
    x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]`` (0 outside the input).
    """
    x = np.ascontiguousarray(x)
    host.check_float(x, "expected")
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw = map(int, (kh, kw, sh, sw, ph, pw, dh, dw))
    OH, OW = _geometry(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    _check_out("cols", cols, (C * kh * kw, N * OH * OW), x.dtype)
    kernel = _im2col_par if cols.size >= PARALLEL_THRESHOLD else _im2col_ser
    kernel(x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, cols)
    return cols


def swap_leading(a, bias, out):
    """``out[j, i, :] = a[i, j, :] (+ bias[i])`` for a C-contiguous ``a`` (I, J, S); returns out.

    The GEMM's (Cout, N, OH*OW) product to NCHW with the bias added in the same
    pass, and NCHW gradients back to (Cout, N, OH*OW). ``bias`` is None or has I
    values. Each item copies one contiguous row of S values; rows are split
    across threads.
    """
    host.check_float(a, "expected")
    if a.ndim != 3 or not a.flags.c_contiguous:
        raise ValueError(f"swap_leading: expected a C-contiguous 3-d array, got shape {a.shape}")
    I, J, S = a.shape
    _check_out("out", out, (J, I, S), a.dtype)
    add = bias is not None
    if add:
        bias = np.ascontiguousarray(bias).reshape(-1)
        if bias.shape != (I,):
            raise ValueError(f"swap_leading: bias must have {I} values, got shape {bias.shape}")
    else:
        bias = np.zeros(1, a.dtype)
    kernel = _swap_par if a.size >= PARALLEL_THRESHOLD else _swap_ser
    kernel(a, bias, add, out)
    return out


def col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, dx):
    """Adjoint of :func:`im2col`: ``dx`` (N, C, H, W) = sum of the ``cols``
    entries read from each position; returns dx."""
    cols = np.ascontiguousarray(cols)
    host.check_float(cols, "expected")
    N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw = map(
        int, (N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw))
    OH, OW = _geometry(H, W, kh, kw, sh, sw, ph, pw, dh, dw)
    if cols.shape != (C * kh * kw, N * OH * OW):
        raise ValueError(f"cols must have shape {(C * kh * kw, N * OH * OW)}, "
                         f"got {cols.shape}")
    _check_out("dx", dx, (N, C, H, W), cols.dtype)
    kernel = _col2im_par if cols.size >= PARALLEL_THRESHOLD else _col2im_ser
    kernel(cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, dx)
    return dx
