"""``tinynorm.nn.utils``, as ``torch.nn.utils``: weight normalization hooks, and ``update_bn``
(``torch.optim.swa_utils.update_bn``): BN's population statistics recomputed over a loader."""
from .population_stats import update_bn
from .weight_norm import init_weight_norm_, remove_weight_norm, weight_norm

__all__ = ["weight_norm", "remove_weight_norm", "init_weight_norm_", "update_bn"]
