"""``tinynorm.distributed``: communicators for data-parallel training and synchronized BN.

Three backends share one interface (:class:`Communicator`: ``rank``,
``world_size``, ``allgather``, ``allreduce``, ``broadcast``, ``barrier``,
``close``):

* ``single``: one process; the default, needs no setup.
* ``multiprocessing``: workers spawned by :func:`launch` on one machine,
  exchanging through shared memory (:mod:`.shm`).
* ``mpi``: ranks started by ``mpiexec``, through mpi4py (:mod:`.mpi`;
  ``pip install 'tinynorm[mpi]'``).

Every collective sums in rank order, so results are the same on every rank
and from run to run.
"""
from .base import (Communicator, DistributedError, ExchangeMismatch, ExchangeTimeout, PeerFailure,
                   SingleProcess, WorkerError)

BACKENDS = ("single", "multiprocessing", "mpi")

_current = SingleProcess()


def get_communicator():
    """The communicator of this process (a world of one unless a backend was set up)."""
    return _current


def set_communicator(comm):
    """Make ``comm`` this process's default communicator; returns the previous one."""
    global _current
    if not isinstance(comm, Communicator):
        raise TypeError(f"expected a Communicator, got {type(comm).__name__}")
    previous, _current = _current, comm
    return previous


def init_process_group(backend="single", debug=False):
    """Set up the default communicator of this process for ``backend`` ('single' or 'mpi').

    The multiprocessing backend is set up by :func:`launch` in each worker.
    """
    if backend == "single":
        comm = SingleProcess()
    elif backend == "mpi":
        from .mpi import MPICommunicator
        comm = MPICommunicator(debug=debug)
        share_cores(comm.local_size)
    elif backend == "multiprocessing":
        raise ValueError("the multiprocessing backend is started by tinynorm.distributed.launch(fn, nprocs)")
    else:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    set_communicator(comm)
    return comm


def share_cores(ranks_on_this_machine):
    """Give this rank Numba's thread count divided by the ranks sharing the machine (at least 1).

    Ranks that each start a full thread pool fight for the cores: on 2 cores,
    2 ranks x 2 threads plus MPI's polling made an epoch many times slower.
    """
    import numba
    numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // max(1, ranks_on_this_machine)))


def destroy_process_group():
    """Close the default communicator and go back to a world of one."""
    global _current
    _current.close()
    _current = SingleProcess()


def get_rank():
    return _current.rank


def get_world_size():
    return _current.world_size


def is_mpi_launch():
    """True when this process was started by an MPI launcher (mpiexec/mpirun) with more than one rank."""
    import os
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE"):
        if os.environ.get(var, "1") not in ("", "1"):
            return True
    return False


from .data_parallel import allreduce_gradients, broadcast_module  # noqa: E402
from .launch import launch  # noqa: E402

__all__ = ["Communicator", "SingleProcess", "DistributedError", "PeerFailure", "ExchangeTimeout",
           "ExchangeMismatch", "WorkerError", "BACKENDS", "get_communicator", "set_communicator",
           "init_process_group", "destroy_process_group", "get_rank", "get_world_size",
           "is_mpi_launch", "launch", "broadcast_module", "allreduce_gradients"]
