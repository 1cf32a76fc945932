"""The communicator interface every backend implements, and the errors they raise.

A communicator joins ``world_size`` ranks. Every collective is an *exchange*:
all ranks must call the same collectives in the same order with arrays of the
same shape and dtype, or the ranks wait for each other. Reductions add the
ranks' arrays in rank order (0, 1, ..., W-1) on every rank, so every rank gets
bitwise the same result, run after run.
"""
import numpy as np


class DistributedError(RuntimeError):
    """Base class of the errors raised by tinynorm.distributed."""


class PeerFailure(DistributedError):
    """Another rank raised or died while this rank waited for it."""

    def __init__(self, message, rank=None):
        super().__init__(message)
        self.rank = rank


class ExchangeTimeout(DistributedError):
    """Some ranks did not reach an exchange within the communicator's timeout."""

    def __init__(self, message, ranks=()):
        super().__init__(message)
        self.ranks = tuple(ranks)


class ExchangeMismatch(DistributedError):
    """Ranks met at an exchange with different tags, sizes or dtypes."""


class WorkerError(DistributedError):
    """Raised by :func:`tinynorm.distributed.launch` in the parent when a worker failed."""

    def __init__(self, message, rank=None, traceback=""):
        super().__init__(message)
        self.rank = rank
        self.traceback = traceback


# Failures of the user's input or environment (a bad flag, a checkpoint of another run, an
# exchange that timed out): the CLI, and launch() for a worker's failure, give the message alone.
# Anything else is a bug in tinynorm and keeps its traceback.
USER_ERRORS = (ValueError, OSError, ImportError, DistributedError)

REDUCE_OPS = ("sum", "mean", "max", "min")


def reduce_in_rank_order(gathered, op):
    """Reduce a (world, ...) stack along axis 0, always adding rank 0 first."""
    if op not in REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; choose one of {', '.join(REDUCE_OPS)}")
    out = gathered[0].copy()
    for part in gathered[1:]:
        if op in ("sum", "mean"):
            out += part
        elif op == "max":
            np.maximum(out, part, out=out)
        else:
            np.minimum(out, part, out=out)
    if op == "mean":
        out /= len(gathered)
    return out


class Communicator:
    """rank, world_size, allgather, allreduce, broadcast, barrier, close.

    Backends implement ``allgather``, ``broadcast`` and ``barrier``;
    ``allreduce`` is an allgather followed by a reduction in rank order, so
    that results do not depend on which rank finished first. ``tag`` names the
    exchange (e.g. "features.1 forward"); in debug mode the ranks compare tags
    and report a mismatch by name.
    """

    rank = 0
    world_size = 1
    backend = "base"

    def allgather(self, array, tag=None):
        """Return an array of shape (world_size, *array.shape): every rank's ``array``, by rank."""
        raise NotImplementedError

    def allreduce(self, array, op="sum", tag=None):
        """Elementwise ``op`` ('sum', 'mean', 'max', 'min') of every rank's ``array``."""
        if op not in REDUCE_OPS:
            raise ValueError(f"unknown reduction {op!r}; choose one of {', '.join(REDUCE_OPS)}")
        return reduce_in_rank_order(self.allgather(array, tag=tag), op)

    def broadcast(self, array, src=0, tag=None):
        """Return rank ``src``'s ``array`` on every rank (other ranks pass an array of the same shape)."""
        raise NotImplementedError

    def barrier(self, tag=None):
        raise NotImplementedError

    def close(self):
        pass

    def _check_src(self, src):
        if not 0 <= src < self.world_size:
            raise ValueError(f"src rank {src} is outside 0..{self.world_size - 1}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} rank {self.rank} of {self.world_size}>"


class SingleProcess(Communicator):
    """World size 1: every collective returns its input. The default; needs no setup."""

    backend = "single"

    def allgather(self, array, tag=None):
        return np.array(array)[None].copy()

    def broadcast(self, array, src=0, tag=None):
        self._check_src(src)
        return np.array(array, copy=True)

    def barrier(self, tag=None):
        pass
