"""The combine step of synchronized (cross-GPU) BN, :class:`SyncCombine`: a public combine
object of :func:`tinynorm.ops.batch_norm.batch_norm` (``nn.SyncBatchNorm`` imports it from here).
"""
import numpy as np

from .batch_norm import chan_merge


class SyncCombine:
    """Combine BN statistics and gradient sums across the ranks of ``comm``.

    MegDet (Peng et al. 2018, "MegDet: A Large Mini-Batch Object Detector", section 4).
    Each worker holds a shard of the batch. Forward: every worker's per-channel
    (count, mean, M2) is gathered in float64 and merged in rank order with Chan's
    formula (:func:`tinynorm.ops.batch_norm.chan_merge`), so uneven and empty
    shards are exact; every worker then normalizes with the global statistics.
    Backward: the per-channel (sum dy, sum dy*(x - mean)) are summed over workers
    and the elementwise dx divides by the global count. dgamma and dbeta stay
    local; data-parallel gradient averaging combines them. An empty shard still
    joins both exchanges, or its peers would wait for it. ``tag`` names the
    exchanges in debug messages.
    """

    def __init__(self, comm, tag="SyncBatchNorm"):
        self.comm, self.tag = comm, tag

    def stats(self, count, mean, m2):
        parts = self.comm.allgather(np.stack([count, mean, m2]).astype(np.float64, copy=False),
                                    tag=f"{self.tag} forward")
        return chan_merge(parts[:, 0], parts[:, 1], parts[:, 2])

    def grad_sums(self, sum_dy, sum_dy_xmu):
        total = self.comm.allreduce(np.stack([sum_dy, sum_dy_xmu]), op="sum",
                                    tag=f"{self.tag} backward")
        return total[0], total[1]
