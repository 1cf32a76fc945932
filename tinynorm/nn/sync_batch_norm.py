"""SyncBatchNorm: BatchNorm whose training statistics span every rank's shard.

See :class:`tinynorm.ops.sync_batch_norm.SyncCombine` for what is exchanged
(MegDet, Peng et al. 2018). Arguments, parameters and buffers are PyTorch's; ``process_group``
is a :class:`tinynorm.distributed.Communicator` (default: the process's
communicator at call time). In eval mode, or with a world of one, it is plain
BN and does not communicate.
"""
import itertools

from .. import distributed
from ..ops.sync_batch_norm import SyncCombine
from .batch_norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, _BatchNorm

_ids = itertools.count()


class SyncBatchNorm(_BatchNorm):
    """BN over (N, C, *) input with statistics synchronized across ranks in training."""

    _expected_ranks = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, dtype=None, **kwargs):
        if dtype is not None:
            kwargs["dtype"] = dtype
        super().__init__(num_features, eps, momentum, affine, track_running_stats, **kwargs)
        self.process_group = process_group
        self.sync_name = f"SyncBatchNorm#{next(_ids)}"
        self._calls = 0

    def _check_input(self, x):
        if x.ndim < 2:
            raise ValueError(f"SyncBatchNorm expected at least 2D input (N, C, *), got {x.ndim}D "
                             f"input of shape {tuple(x.shape)}")
        super()._check_input(x)

    def _combine(self):
        comm = self.process_group or distributed.get_communicator()
        if not self.training or comm.world_size == 1:
            return None
        self._calls += 1
        return SyncCombine(comm, f"{self.sync_name} call {self._calls}")

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Return ``module`` with every BatchNorm1d/2d/3d replaced by a SyncBatchNorm.

        Only plain BN layers are converted; the variants built on BN's
        combine step (CmBN, Cross-Iteration BN, Batch Renorm) are left alone.

        Parameters and buffers are carried over (the same arrays), and each
        converted layer is named by its path in ``module`` for debug messages.
        """
        return _convert(module, process_group, "")


def _convert(module, process_group, path):
    out = module
    if type(module) in (BatchNorm1d, BatchNorm2d, BatchNorm3d):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            out._buffers[name] = module._buffers[name]
        out.training = module.training
        out.sync_name = path or out.sync_name
    for name, child in list(module._modules.items()):
        new = _convert(child, process_group, f"{path}.{name}" if path else name)
        if new is not child:
            out._modules[name] = new
    return out
