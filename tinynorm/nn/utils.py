"""``tinynorm.nn.utils``, as ``torch.nn.utils``: weight normalization hooks."""
from .weight_norm import init_weight_norm_, remove_weight_norm, weight_norm

__all__ = ["weight_norm", "remove_weight_norm", "init_weight_norm_"]
