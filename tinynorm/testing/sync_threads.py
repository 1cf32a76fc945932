"""Synchronized BN in one process, for ``tinynorm gradcheck``: two ranks on threads.

``sync_batch_norm(x, w, b, world=2)`` splits the batch along axis 0 into
``world`` shards, runs ``F.batch_norm`` with :class:`SyncCombine` on each
shard in its own thread (a barrier-based communicator stands in for the
shared-memory one) and concatenates the outputs; its backward runs each
shard's backward in its thread too, since SyncBN's backward all-reduces. It
must equal BN on the whole batch.
"""
import threading

import numpy as np

from .. import functional as F
from ..autograd import Function, enable_grad
from ..ops.sync_batch_norm import SyncCombine
from ..tensor import Tensor


class _ThreadComm:
    """allgather/allreduce among ``world`` threads sharing ``slots`` and a barrier."""

    def __init__(self, rank, world, slots, barrier):
        self.rank, self.world_size, self.slots, self.barrier = rank, world, slots, barrier

    def allgather(self, array, tag=None):
        self.slots[self.rank] = np.array(array)
        self.barrier.wait()
        out = np.stack(self.slots)
        self.barrier.wait()
        return out

    def allreduce(self, array, op="sum", tag=None):
        parts = self.allgather(array, tag)
        total = parts[0].copy()
        for p in parts[1:]:
            total += p
        return total


def _in_threads(world, body):
    barrier = threading.Barrier(world, timeout=60)
    slots = [None] * world
    results, errors = [None] * world, []
    errstate = np.geterr()

    def target(rank):
        try:
            with np.errstate(**errstate):
                results[rank] = body(rank, _ThreadComm(rank, world, slots, barrier))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=target, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class ShardedSyncBatchNorm(Function):
    def forward(self, x, w, b, *, world):
        bounds = np.linspace(0, x.shape[0], world + 1).astype(int)

        def body(rank, comm):
            xs = Tensor(np.ascontiguousarray(x[bounds[rank]:bounds[rank + 1]]), requires_grad=True)
            ws, bs = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
            return xs, ws, bs, F.batch_norm(xs, None, None, ws, bs, True,
                                            combine=SyncCombine(comm))
        with enable_grad():
            self.parts = _in_threads(world, body)
        self.bounds = bounds
        return np.concatenate([p[3].data for p in self.parts])

    def backward(self, g):
        bounds = self.bounds

        def body(rank, comm):
            xs, ws, bs, y = self.parts[rank]
            y.backward(np.ascontiguousarray(g[bounds[rank]:bounds[rank + 1]]))
            return xs.grad.data, ws.grad.data, bs.grad.data
        grads = _in_threads(len(self.parts), body)
        self.parts = None
        return (np.concatenate([q[0] for q in grads]), sum(q[1] for q in grads),
                sum(q[2] for q in grads))


def sync_batch_norm(x, w, b, world=2):
    return ShardedSyncBatchNorm.apply(x, w, b, world=world)
