"""Datasets and loaders: pure NumPy arrays in, Tensor batches out."""

from .digits import load_digits
from .idx import load_mnist_dir, read_idx
from .dataset import Dataset, TensorDataset, default_collate
from .loader import DataLoader, PairedBatchLoader

__all__ = ["load_digits", "read_idx", "load_mnist_dir", "DataLoader", "PairedBatchLoader", "Dataset",
           "TensorDataset", "default_collate"]
