"""Run by ``mpiexec -n 2 python -m mpi4py tests/mpi_ranks.py OUTDIR`` from test_distributed.py.

Each rank runs the same worker functions as the shared-memory tests and
pickles its results to OUTDIR/rank<r>.pkl for the parent test to check.
"""
import os
import pickle
import sys

import tinynorm.distributed as dist

import distributed_workers as W


def main(outdir):
    comm = dist.init_process_group("mpi", debug=True)
    res = dict(backend=comm.backend, collectives=W.collectives(), sync_bn=W.sync_bn_cases(),
               dp=W.dp_train(steps=4))
    with open(os.path.join(outdir, f"rank{comm.rank}.pkl"), "wb") as f:
        pickle.dump(res, f)
    comm.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
