"""The "cols" traversal: float64 sums down the columns of (R, M) arrays, strided across rows.

Each column's sum is reduced in pieces: one thread per (column, chunk of
rows) keeps two rows' loads in flight and writes a float64 partial; a finish
kernel adds a column's partials in order of the chunk, so results repeat
bitwise from run to run. Consecutive threads read consecutive columns of a
row, so loads coalesce.
"""
import numpy as np
from numba import cuda, float64

from .host import launch as _launch, workspace as _workspace


@cuda.jit
def column_sums_kernel(dy, x, R, G, K, mean, centered, rstd, chunk, part_a, part_b):
    """Column sums of (R, G*K) arrays over one chunk of rows per grid row, statistics per (r, g):
    part_a[p, j] = sum_r dy[r, j]*(x[r, j] - mean[r, g] if centered else x[r, j])*rstd[r, g],
    part_b[p, j] = sum_r dy[r, j], for rows r in [p*chunk, (p+1)*chunk) and g = j // K."""
    M = G * K
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    p = cuda.blockIdx.y
    if j >= M:
        return
    g = j // K
    r = p * chunk
    end = min(R, r + chunk)
    a = 0.0
    b = 0.0
    while r + 1 < end:
        q0 = r * G + g
        q1 = q0 + G
        g0 = float64(dy[r * M + j])
        g1 = float64(dy[(r + 1) * M + j])
        m0 = mean[q0] if centered else 0.0
        m1 = mean[q1] if centered else 0.0
        a += g0 * (x[r * M + j] - m0) * rstd[q0] + g1 * (x[(r + 1) * M + j] - m1) * rstd[q1]
        b += g0 + g1
        r += 2
    if r < end:
        q0 = r * G + g
        g0 = float64(dy[r * M + j])
        m0 = mean[q0] if centered else 0.0
        a += g0 * (x[r * M + j] - m0) * rstd[q0]
        b += g0
    part_a[p * M + j] = a
    part_b[p * M + j] = b


@cuda.jit
def column_finish_kernel(part_a, part_b, P, M, out_a, out_b):
    """out_a[j] = sum_p part_a[p, j], out_b[j] = sum_p part_b[p, j], in order of p."""
    for j in range(cuda.grid(1), M, cuda.gridsize(1)):
        a = 0.0
        b = 0.0
        for p in range(P):
            a += part_a[p * M + j]
            b += part_b[p * M + j]
        out_a[j] = a
        out_b[j] = b


def column_sums(dy, x, R, G, K, mean, rstd, out_a, out_b, t):
    """Launch the column kernels over dy, x (R, G*K) flattened, statistics (R, G):
    out_a[j] = sum_r dy*(x - mean[r, g])*rstd[r, g] (mean None: uncentred), out_b[j] = sum_r dy
    (out_b may be None). Partials cover chunks of rows so that about 1024 blocks run."""
    M = G * K
    chunk = max(16, -(-R * max(1, -(-M // t)) // 1024))
    P = -(-R // chunk)
    part_a = _workspace(P * M, np.float64, dy)
    part_b = _workspace(P * M, np.float64, dy)
    _launch(column_sums_kernel, (-(-M // t), P), t, dy, x, R, G, K,
            rstd if mean is None else mean, 0 if mean is None else 1, rstd, chunk, part_a, part_b)
    if out_b is None:
        out_b = _workspace(M, np.float64, dy)
    _launch(column_finish_kernel, -(-M // t), t, part_a, part_b, P, M, out_a, out_b)
