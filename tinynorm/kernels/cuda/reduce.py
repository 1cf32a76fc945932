"""Block-wide reductions in shared memory, shared by the CUDA kernels.

Trees of ``syncthreads`` rounds (no warp shuffles, so the CUDA simulator runs
them); the pairing is fixed, so results do not change from run to run. Every
thread of the block gets the result, and the buffers may be reused at once.
"""
from numba import cuda


@cuda.jit(device=True)
def block_sum(buf, value, tid, threads):
    """Sum of every thread's ``value``; ``buf`` is a shared float64 array of ``threads``."""
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
