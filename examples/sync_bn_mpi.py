"""Teaches: the same SyncBatchNorm under MPI: one script, started once per rank by mpiexec.

Run it with two ranks:

    mpiexec -n 2 python examples/sync_bn_mpi.py [--quick]

Each rank calls ``init_process_group("mpi")``, takes its share of the batch
(built from the same seed everywhere) and runs SyncBatchNorm; rank 0 gathers
the outputs and input gradients and compares them with BatchNorm2d on the
whole batch, as ``sync_bn_workers.py`` does with spawned processes. Run
without mpiexec it is a world of one, where SyncBatchNorm is plain BN.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinynorm.distributed as dist  # noqa: E402
from sync_bn_workers import batch, bn_step  # noqa: E402
from tinynorm import nn  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a batch of 8 instead of 64")
    args = p.parse_args(argv)
    n = 8 if args.quick else 64
    comm = dist.init_process_group("mpi" if dist.is_mpi_launch() else "single")
    if n % comm.world_size:
        raise SystemExit(f"the batch of {n} does not split over {comm.world_size} ranks")
    x, dy = batch(n)
    share = n // comm.world_size
    mine = slice(comm.rank * share, (comm.rank + 1) * share)
    y, dx = bn_step(nn.SyncBatchNorm(3, dtype=np.float64), x[mine], dy[mine])
    ys, dxs = comm.allgather(y), comm.allgather(dx)
    if comm.rank == 0:
        y_ref, dx_ref = bn_step(nn.BatchNorm2d(3, dtype=np.float64), x, dy)
        dy_max = float(np.abs(ys.reshape(y_ref.shape) - y_ref).max())
        dx_max = float(np.abs(dxs.reshape(dx_ref.shape) - dx_ref).max())
        print(f"SyncBatchNorm on {comm.world_size} MPI ranks vs BatchNorm2d on the batch of {n}: "
              f"max |y diff| {dy_max:.2e}, max |dx diff| {dx_max:.2e}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
