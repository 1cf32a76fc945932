"""Block-wide reductions shared by the CUDA kernels.

Trees of ``syncthreads`` rounds in shared memory (the CUDA simulator runs
them) and, on a real GPU, warp-shuffle folds (``sum2_for`` picks). The
pairing is fixed, so results do not change from run to run. Every thread of
the block gets the result, and the buffers may be reused at once.
"""
from numba import config, cuda, float64


@cuda.jit(device=True)
def block_sum(buf, value, tid, threads):
    """Sum of every thread's ``value``; ``buf`` is a shared float64 array of ``threads``."""
    # block_sum2 and block_chan_merge repeat this tree on purpose: one tree per call folds
    # several values with the barrier rounds of one.
    buf[tid] = value
    cuda.syncthreads()
    half = threads // 2
    while half > 0:
        if tid < half:
            buf[tid] += buf[tid + half]
        cuda.syncthreads()
        half //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def block_mean_sq(buf, x, base, n, tid, threads):
    """Mean of x[base + j]^2 over j < n (0 when n == 0): each thread sums its strided share of
    squares in float64, ``block_sum`` folds them."""
    acc = 0.0
    for j in range(tid, n, threads):
        v = float64(x[base + j])
        acc += v * v
    total = block_sum(buf, acc, tid, threads)
    return total / n if n > 0 else 0.0


@cuda.jit(device=True)
def block_sum2(bufa, bufb, a, b, tid, threads):
    """Two block sums in one tree (half the barrier rounds of two ``block_sum`` calls)."""
    bufa[tid] = a
    bufb[tid] = b
    cuda.syncthreads()
    half = threads // 2
    while half > 0:
        if tid < half:
            bufa[tid] += bufa[tid + half]
            bufb[tid] += bufb[tid + half]
        cuda.syncthreads()
        half //= 2
    ta, tb = bufa[0], bufb[0]
    cuda.syncthreads()
    return ta, tb


@cuda.jit(device=True)
def block_chan_merge(sn, sm, sq, n, m, q, tid, threads):
    """Merge every thread's (count n, mean m, M2 q) by Chan et al.'s pairwise formula.

    n = na + nb, delta = mb - ma, mean = ma + delta*nb/n, M2 = qa + qb + delta^2*na*nb/n;
    empty parts (count 0) are skipped. Returns (count, mean, M2).
    """
    sn[tid] = n
    sm[tid] = m
    sq[tid] = q
    cuda.syncthreads()
    half = threads // 2
    while half > 0:
        if tid < half:
            nb = sn[tid + half]
            if nb > 0.0:
                na = sn[tid]
                nab = na + nb
                delta = sm[tid + half] - sm[tid]
                sm[tid] += delta * (nb / nab)
                sq[tid] += sq[tid + half] + delta * delta * (na * nb / nab)
                sn[tid] = nab
        cuda.syncthreads()
        half //= 2
    count, mean, m2 = sn[0], sm[0], sq[0]
    cuda.syncthreads()
    return count, mean, m2


@cuda.jit(device=True)
def _warp_sum2(a, b):
    off = 16
    while off > 0:
        a += cuda.shfl_down_sync(0xFFFFFFFF, a, off)
        b += cuda.shfl_down_sync(0xFFFFFFFF, b, off)
        off //= 2
    return a, b


@cuda.jit(device=True)
def block_sum2_shfl(bufa, bufb, a, b, tid, threads):
    """``block_sum2`` by warp shuffles: each warp folds its 32 values, warp 0 folds the warps' sums.

    Needs ``threads`` a multiple of 32 (and ``bufa``/``bufb`` of at least threads/32 slots); the
    folding order is fixed, so results repeat bitwise. The simulator does not run shuffles, so
    kernels take this path only on a real GPU (``USE_WARP_SHUFFLE``).
    """
    a, b = _warp_sum2(a, b)
    lane = tid & 31
    warp = tid >> 5
    if lane == 0:
        bufa[warp] = a
        bufb[warp] = b
    cuda.syncthreads()
    if warp == 0:
        nw = threads >> 5
        a = bufa[lane] if lane < nw else 0.0
        b = bufb[lane] if lane < nw else 0.0
        a, b = _warp_sum2(a, b)
        if lane == 0:
            bufa[0] = a
            bufb[0] = b
    cuda.syncthreads()
    ta, tb = bufa[0], bufb[0]
    cuda.syncthreads()
    return ta, tb


USE_WARP_SHUFFLE = not config.ENABLE_CUDASIM


def sum2_for(threads):
    """The two-value block sum a kernel built for ``threads`` should call."""
    return block_sum2_shfl if USE_WARP_SHUFFLE and threads >= 32 and threads % 32 == 0 else block_sum2
