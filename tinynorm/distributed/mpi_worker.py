"""Entry point of the ranks that ``launch(fn, n, backend='mpi')`` starts under mpiexec.

``python -m mpi4py -m tinynorm.distributed.mpi_worker JOBDIR``: every rank
unpickles (fn, args, kwargs, debug) from JOBDIR/job.pkl, makes the MPI
communicator its default, calls fn and pickles ("ok", result) or
("error", type, message, traceback, user error?) to JOBDIR/rank<r>.pkl. An exception is
re-raised after it is recorded, so ``-m mpi4py`` aborts the whole job rather
than leaving the other ranks blocked in a collective.
"""
import os
import pickle
import sys
import traceback


def main(jobdir):
    from mpi4py import MPI
    from . import init_process_group
    from .base import USER_ERRORS
    rank = MPI.COMM_WORLD.Get_rank()
    out = os.path.join(jobdir, f"rank{rank}.pkl")
    try:
        with open(os.path.join(jobdir, "job.pkl"), "rb") as f:
            fn, args, kwargs, debug = pickle.load(f)
        init_process_group("mpi", debug=debug)
        result = fn(*args, **kwargs)
    except BaseException as e:
        with open(out, "wb") as f:
            pickle.dump(("error", type(e).__name__, str(e), traceback.format_exc(),
                         isinstance(e, USER_ERRORS)), f)
        raise
    with open(out, "wb") as f:
        pickle.dump(("ok", result), f)


if __name__ == "__main__":
    main(sys.argv[1])
