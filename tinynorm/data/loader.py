"""Minibatch iteration over a tuple of equally long NumPy arrays."""

from __future__ import annotations

import math
import operator

import numpy as np

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``dataset`` (a tuple of arrays sharing their first axis) in batches.

    Each iteration is one epoch and yields tuples of arrays, one per dataset
    array. Without shuffle the batches are slices (views) in order; with
    shuffle each epoch uses a new permutation from one ``np.random.Generator``
    created from ``seed`` at construction, so equal seeds give equal epoch
    sequences. ``drop_last`` drops a final short batch. ``len()`` is the
    number of batches per epoch.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed=None):
        if isinstance(dataset, np.ndarray) or not isinstance(dataset, (tuple, list)):
            raise ValueError(
                f"dataset must be a tuple of arrays, got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("dataset must contain at least one array")
        arrays = tuple(np.asarray(a) for a in dataset)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"dataset[{i}] is 0-d; every array needs a first (sample) axis")
        lengths = [a.shape[0] for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"dataset arrays must have equal lengths, got {lengths}")
        if isinstance(batch_size, bool):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}") from None
        if batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")

        self.dataset = arrays
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.num_samples = lengths[0]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        self._rng = np.random.default_rng(seed)

    def rng_state(self):
        """The state of the generator that draws the next epochs' orders (a JSON-able dict)."""
        return self._rng.bit_generator.state

    def set_rng_state(self, state):
        self._rng.bit_generator.state = state

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        # Draw the permutation now, not at the first next(), so epochs are
        # numbered by calls to iter().
        order = self._rng.permutation(self.num_samples) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order):
        bs, arrays = self.batch_size, self.dataset
        for b in range(len(self)):
            start, stop = b * bs, min((b + 1) * bs, self.num_samples)
            if order is None:
                yield tuple(a[start:stop] for a in arrays)
            else:
                idx = order[start:stop]
                yield tuple(a[idx] for a in arrays)

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")
