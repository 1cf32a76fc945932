"""Data-parallel training helpers: same parameters everywhere, gradients combined after backward.

Each rank holds a full copy of the model and a shard of every global batch.
``broadcast_module`` copies rank 0's parameters and buffers to all ranks once;
``allreduce_gradients`` combines the gradients after every backward, so every
rank takes the same optimizer step. With SyncBatchNorm the forward pass and the
input gradients already use the whole batch's statistics; the loss on rank r
should be its shard's share of the global loss (e.g. the shard's summed loss
divided by the global batch size) with ``op='sum'``, or the shard's mean with
``op='mean'`` when the shards are equal.
"""
import numpy as np

from . import get_communicator


def _flat_groups(tensors):
    """Group arrays by dtype so that each group travels as one buffer."""
    groups = {}
    for t in tensors:
        groups.setdefault(np.dtype(t.dtype), []).append(t)
    return groups


def broadcast_module(module, src=0, comm=None):
    """Overwrite every parameter and buffer of ``module`` with rank ``src``'s values."""
    comm = comm or get_communicator()
    if comm.world_size == 1:
        return module
    arrays = [p.data for p in module.parameters()] + [b.data for b in module.buffers()
                                                        if b is not None]
    for dtype, group in _flat_groups(arrays).items():
        flat = np.concatenate([a.reshape(-1) for a in group]) if group else np.empty(0, dtype)
        flat = comm.broadcast(flat, src=src, tag=f"broadcast_module {dtype}")
        off = 0
        for a in group:
            a[...] = flat[off:off + a.size].reshape(a.shape)
            off += a.size
    return module


def allreduce_gradients(params, op="mean", comm=None):
    """Replace each parameter's ``.grad`` by the ``op`` ('sum' or 'mean') over ranks.

    ``params`` is a Module or an iterable of parameters. A parameter without a
    gradient contributes zeros (every rank must join every exchange).
    """
    from ..tensor import Tensor
    comm = comm or get_communicator()
    if op not in ("sum", "mean"):
        raise ValueError(f"op must be 'sum' or 'mean', got {op!r}")
    params = list(params.parameters() if hasattr(params, "parameters") else params)
    if comm.world_size == 1:
        return
    for dtype, group in _flat_groups([p.data for p in params]).items():
        members = [p for p in params if np.dtype(p.data.dtype) == dtype]
        flat = np.concatenate([
            (p.grad.data if p.grad is not None else np.zeros_like(p.data)).reshape(-1)
            for p in members])
        flat = comm.allreduce(flat, op=op, tag=f"allreduce_gradients {dtype}")
        off = 0
        for p in members:
            g = flat[off:off + p.data.size].reshape(p.data.shape)
            off += p.data.size
            if p.grad is None:
                p.grad = Tensor(g.copy())
            else:
                p.grad.data[...] = g
