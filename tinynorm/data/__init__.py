"""Datasets and loaders: pure NumPy arrays in, NumPy batches out."""

from .digits import load_digits
from .idx import load_mnist_dir, read_idx
from .loader import DataLoader, PairedBatchLoader

__all__ = ["load_digits", "read_idx", "load_mnist_dir", "DataLoader", "PairedBatchLoader"]
