"""``tinynorm.utils``: ``tinynorm.utils.data`` stands where ``torch.utils.data`` does."""
from . import data

__all__ = ["data"]
