"""Minibatch iteration: batches of Tensors, i.i.d. (``DataLoader``) or of same-label pairs
(``PairedBatchLoader``)."""

from __future__ import annotations

import math
import operator

import numpy as np

from .. import random
from ..profiler import record_batches
from ..tensor import Tensor
from .dataset import TensorDataset, default_collate

__all__ = ["DataLoader", "PairedBatchLoader"]


class _Seeded:
    """A loader whose epochs are drawn from one generator, ``self._rng``; its state is what a
    training checkpoint keeps so that a resumed run sees the same epochs."""

    def rng_state(self):
        """The state of the generator that draws the next epochs' orders (a JSON-able dict)."""
        return self._rng.bit_generator.state

    def set_rng_state(self, state):
        self._rng.bit_generator.state = state


class DataLoader(_Seeded):
    """Iterate over ``dataset`` in batches of Tensors, as ``torch.utils.data.DataLoader``.

    ``dataset`` is any object with ``__len__`` and ``__getitem__`` (a list of samples, a
    ``TensorDataset``, a ``Dataset``), whose samples ``collate_fn`` (``default_collate``)
    stacks, or, as a shortcut, a tuple of arrays (or Tensors) of equal length: its columns,
    batches being slices of them (``TensorDataset(*arrays)`` without the copies). Each
    iteration is one epoch. With ``shuffle`` each epoch uses a new permutation from
    one ``np.random.Generator`` created at construction from ``seed`` (without one, from
    a draw of the global generator, so ``tinynorm.manual_seed`` fixes the order as
    ``torch.manual_seed`` does); equal seeds give equal epoch sequences. ``drop_last``
    drops a final short batch; ``len()`` is the number of batches per epoch. Batches are
    always loaded in the calling process: ``num_workers``, ``pin_memory`` and
    ``persistent_workers`` are accepted (so PyTorch scripts run unchanged) and change
    nothing but speed.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, persistent_workers: bool = False):
        if isinstance(dataset, np.ndarray):
            raise ValueError("dataset must be a tuple of arrays or an indexable dataset (__len__ "
                             "and __getitem__), got a bare ndarray; wrap it as (array,)")
        if isinstance(batch_size, bool):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}") from None
        if batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) \
                or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}")
        self.collate_fn = collate_fn
        self.arrays = None
        if _columns(dataset):
            self.arrays = _arrays(dataset)
            self.num_samples = self.arrays[0].shape[0]
        elif isinstance(dataset, TensorDataset) and collate_fn is None:
            self.arrays = tuple(t.data for t in dataset.tensors)
            self.num_samples = len(dataset)
        elif callable(getattr(dataset, "__getitem__", None)) and callable(getattr(dataset, "__len__", None)):
            self.num_samples = len(dataset)
        else:
            raise ValueError(f"dataset must be a tuple of arrays or have __len__ and __getitem__, "
                             f"got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
        if seed is None:
            seed = random.default_generator().integers(2**63)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    @record_batches
    def __iter__(self):
        # Draw the permutation now, not at the first next(), so epochs are
        # numbered by calls to iter().
        order = self._rng.permutation(self.num_samples) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order):
        bs, arrays = self.batch_size, self.arrays
        collate = self.collate_fn or default_collate
        for b in range(len(self)):
            start, stop = b * bs, min((b + 1) * bs, self.num_samples)
            idx = range(start, stop) if order is None else order[start:stop]
            if arrays is None:
                yield collate([self.dataset[int(i)] for i in idx])
            elif order is None:
                yield tuple(Tensor(a[start:stop]) for a in arrays)
            else:
                yield tuple(Tensor(a[idx]) for a in arrays)

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


def _columns(dataset):
    """Whether ``dataset`` is the tuple of arrays shortcut (a list or other sequence is samples)."""
    return isinstance(dataset, tuple) and all(
        isinstance(a, (Tensor, np.ndarray, np.generic)) for a in dataset)


def _arrays(dataset):
    if len(dataset) == 0:
        raise ValueError("dataset must contain at least one array")
    arrays = tuple(a.data if isinstance(a, Tensor) else np.asarray(a) for a in dataset)
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"dataset[{i}] is 0-d; every array needs a first (sample) axis")
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"dataset arrays must have equal lengths, got {lengths} (a tuple of "
                         "arrays is read as columns; pass a list for a dataset of samples)")
    return arrays


class PairedBatchLoader(_Seeded):
    """Non-i.i.d. minibatches: every batch holds ``batch_size // 2`` pairs of same-label examples.

    Batch Renormalization's test of non-i.i.d. minibatches (Ioffe 2017,
    section 4.3): each batch of 32 is 16 pairs, the two examples of a pair
    sharing their label. Each epoch shuffles every class's examples, pairs
    them off in that order (a class's odd one out sits the epoch out), shuffles
    the pairs and cuts them into batches, dropping a short last batch; so
    every example is seen at most once per epoch, as with ``DataLoader``.
    ``dataset`` is ``(inputs, labels)``; the generator comes from ``seed``. Batches are
    ``(inputs, labels)`` Tensors, as ``DataLoader``'s; too few pairs for one batch raise
    ValueError.
    """

    def __init__(self, dataset, batch_size=32, seed=None):
        if not isinstance(dataset, (tuple, list)) or len(dataset) != 2:
            raise ValueError("PairedBatchLoader: dataset must be a pair (inputs, labels)")
        inputs, labels = np.asarray(dataset[0]), np.asarray(dataset[1])
        if labels.ndim != 1 or len(inputs) != len(labels):
            raise ValueError(f"PairedBatchLoader: labels must be 1-D with one per input, got "
                             f"{labels.shape} labels for {len(inputs)} inputs")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 2 or batch_size % 2:
            raise ValueError(f"PairedBatchLoader: batch_size must be an even integer >= 2 (pairs), "
                             f"got {batch_size!r}")
        self.inputs, self.labels, self.batch_size = inputs, labels, int(batch_size)
        self._classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self._pairs = sum(len(idx) // 2 for idx in self._classes)
        if self._pairs < self.batch_size // 2:
            raise ValueError(f"PairedBatchLoader: {len(labels)} examples make {self._pairs} "
                             f"same-label pairs, fewer than the {self.batch_size // 2} of one batch "
                             f"(batch_size {self.batch_size}); an epoch would be empty")
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        return self._pairs // (self.batch_size // 2)

    @record_batches
    def __iter__(self):
        rng = self._rng
        pairs = np.concatenate([rng.permutation(idx)[:len(idx) // 2 * 2].reshape(-1, 2)
                                for idx in self._classes])
        pairs = pairs[rng.permutation(len(pairs))]
        per_batch = self.batch_size // 2
        return ((Tensor(self.inputs[b.ravel()]), Tensor(self.labels[b.ravel()]))
                for b in (pairs[k * per_batch:(k + 1) * per_batch] for k in range(len(self))))

    def __repr__(self):
        return f"PairedBatchLoader(num_pairs={self._pairs}, batch_size={self.batch_size})"
