"""Teaches: SyncBatchNorm on worker processes equals BatchNorm on the whole batch.

Two worker processes (tinynorm.distributed.launch, shared memory) each hold
half of a batch. With SyncBatchNorm they exchange per-channel (count, mean,
M2) in the forward pass and (sum dy, sum dy*(x - mean)) in the backward pass,
so every worker normalizes with the statistics of the whole batch. The script
compares the workers' outputs and input gradients with one process running
BatchNorm2d on the full batch. Then it shows what goes wrong without the
exchange: plain BN on each half.

    python examples/sync_bn_workers.py [--quick]
"""
import argparse

import numpy as np

import tinynorm as tn
import tinynorm.distributed as dist
from tinynorm import nn


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 4, 4)) * 2 + 1
    x[: n // 2] += 3.0                     # the two halves differ: local statistics would too
    return x, rng.standard_normal(x.shape)


def bn_step(module, x, dy):
    xt = tn.tensor(x, requires_grad=True)
    y = module(xt)
    y.backward(dy)
    return y.numpy(), xt.grad.numpy()


def worker(n):
    """Runs on every rank: this rank's share of the batch through SyncBatchNorm, then plain BN."""
    comm = dist.get_communicator()
    x, dy = batch(n)
    share = n // comm.world_size
    mine = slice(comm.rank * share, (comm.rank + 1) * share)
    return {sync: bn_step(nn.SyncBatchNorm(3, dtype=np.float64) if sync else
                          nn.BatchNorm2d(3, dtype=np.float64), x[mine], dy[mine])
            for sync in (True, False)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a batch of 8 instead of 64")
    args = p.parse_args(argv)
    n = 8 if args.quick else 64
    x, dy = batch(n)
    y_ref, dx_ref = bn_step(nn.BatchNorm2d(3, dtype=np.float64), x, dy)
    ranks = dist.launch(worker, 2, args=(n,), timeout=120)
    diffs = {}
    for sync in (True, False):
        y = np.concatenate([r[sync][0] for r in ranks])
        dx = np.concatenate([r[sync][1] for r in ranks])
        diffs[sync] = (float(np.abs(y - y_ref).max()), float(np.abs(dx - dx_ref).max()))
        name = "SyncBatchNorm" if sync else "BatchNorm2d per worker"
        print(f"{name:<23} on 2 workers vs BatchNorm2d on the batch of {n}: "
              f"max |y diff| {diffs[sync][0]:.2e}, max |dx diff| {diffs[sync][1]:.2e}")
    return diffs


if __name__ == "__main__":
    main()
