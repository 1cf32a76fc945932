"""The MPI backend, through mpi4py (imported only when this backend is used).

Run with ``mpiexec -n N python -m mpi4py your_script.py``: ``-m mpi4py`` makes
an uncaught exception on one rank abort the whole job instead of leaving its
peers blocked in a collective. MPI has no timeouts of its own; the job
launcher's fault handling is the bound. Reductions are an Allgather followed
by a sum in rank order, as in every tinynorm backend, so all ranks hold
bitwise equal results.
"""
import numpy as np

from .base import Communicator, ExchangeMismatch

HEADER_BYTES = 128


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("the MPI backend needs mpi4py and an MPI library: "
                          "pip install 'tinynorm[mpi]' (mpi4py and mpich)") from e
    return MPI


def _text(raw):
    return bytes(raw).rstrip(b"\0").decode("utf-8", "replace")


class MPICommunicator(Communicator):
    """A communicator over an mpi4py communicator (default: ``MPI.COMM_WORLD``)."""

    backend = "mpi"

    def __init__(self, comm=None, debug=False):
        MPI = _mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        self.debug = bool(debug)
        self.exchanges = 0

    def _check(self, what, tag, nbytes):
        self.exchanges += 1
        if not self.debug:
            return
        head = np.zeros(HEADER_BYTES + 8, np.uint8)
        text = f"{tag or '?'} | {what}".encode("utf-8", "replace")[:HEADER_BYTES]
        head[:len(text)] = np.frombuffer(text, np.uint8)
        head[HEADER_BYTES:] = np.frombuffer(np.int64(nbytes).tobytes(), np.uint8)
        heads = np.empty((self.world_size, head.size), np.uint8)
        self.comm.Allgather(head, heads)
        if np.any(heads != heads[0]):
            parts = "; ".join(f"rank {q} at {_text(h[:HEADER_BYTES])!r} "
                              f"({int(h[HEADER_BYTES:].view(np.int64)[0])} bytes)"
                              for q, h in enumerate(heads))
            raise ExchangeMismatch(f"ranks disagree at exchange {self.exchanges}: {parts}")

    def allgather(self, array, tag=None):
        a = np.ascontiguousarray(array)
        self._check(f"allgather {a.shape} {a.dtype}", tag, a.nbytes)
        out = np.empty((self.world_size,) + a.shape, dtype=a.dtype)
        self.comm.Allgather(a.reshape(-1).view(np.uint8), out.reshape(-1).view(np.uint8))
        return out

    def broadcast(self, array, src=0, tag=None):
        self._check_src(src)
        a = np.ascontiguousarray(array)
        self._check(f"broadcast from {src} {a.shape} {a.dtype}", tag, a.nbytes)
        out = a.copy() if self.rank == src else np.empty_like(a)
        self.comm.Bcast(out.reshape(-1).view(np.uint8), root=src)
        return out

    def barrier(self, tag=None):
        self._check("barrier", tag, 0)
        self.comm.Barrier()
