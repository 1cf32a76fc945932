"""``torch.utils.data``'s names: ``DataLoader``, ``Dataset``, ``TensorDataset``, ``default_collate``."""
from ..data import DataLoader, Dataset, TensorDataset, default_collate

__all__ = ["DataLoader", "Dataset", "TensorDataset", "default_collate"]
