"""The recurrent models that ``tinynorm train`` builds: sequence classifiers that read an image as
a sequence (rows, or pixels as in sequential MNIST). The feed-forward models are in
:mod:`tinynorm.models`; the recurrent layer each ``--norm`` gives is a row of
:mod:`tinynorm.norm_registry`.

An image (N, C, H, W) becomes, by default, H steps of C*W features (one row
per step); with ``pixels=True`` it becomes H*W steps of C features (one pixel
per step, raster order: Cooijmans et al. 2016's sequential MNIST); with
``permuted=True`` too, the pixels come in one fixed random order (permuted
sequential MNIST: the same permutation for every image, every run and every
seed, so that neighbouring pixels land far apart in time). An LSTM
(``norm='none'``), a BN-LSTM (``norm='bn'``) or an LN-LSTM (``norm='ln'``)
reads the sequence and a linear layer classifies its last hidden state.
"""
import numpy as np

from . import nn
from . import norm_registry as registry

NORMS = registry.keys(model="lstm")
PERMUTATION_SEED = 1603_09025


def pixel_permutation(length):
    """The fixed pixel order of permuted sequences of ``length`` steps (seeded by a constant)."""
    return np.random.default_rng(PERMUTATION_SEED).permutation(length)


def image_to_sequence(x, pixels=False, permuted=False):
    """(N, C, H, W) -> batch-first (N, H, C*W), or (N, H*W, C) with ``pixels``.

    ``permuted`` (with ``pixels``) reorders the H*W steps by :func:`pixel_permutation`.
    """
    n, c, h, w = x.shape
    if permuted and not pixels:
        raise ValueError("image_to_sequence: permuted=True reorders pixels; it needs pixels=True")
    if pixels:
        seq = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        return seq[:, pixel_permutation(h * w)] if permuted else seq
    return x.permute(0, 2, 1, 3).reshape(n, h, c * w)


class LSTMClassifier(nn.Module):
    """LSTM, BN-LSTM or LN-LSTM over a batch-first sequence, then ``Linear(hidden_size, num_classes)``.

    ``forward(x)`` takes images (N, C, H, W), turned into a sequence by
    :func:`image_to_sequence` (``pixels`` picks rows or pixels, ``permuted``
    their order), or a sequence
    (N, T, input_size) as is. ``max_length`` (the training sequence length)
    sizes the BN-LSTM's per-step statistics and is required for ``norm='bn'``.
    """

    def __init__(self, input_size, hidden_size=128, num_classes=10, norm="bn", max_length=None,
                 pixels=False, permuted=False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if norm == "bn" and max_length is None:
            raise ValueError("LSTMClassifier: norm='bn' needs max_length, the training sequence "
                             "length (one set of BN statistics per step)")
        if permuted and not pixels:
            raise ValueError("LSTMClassifier: permuted=True reorders pixels; it needs pixels=True")
        self.norm, self.pixels, self.permuted = norm, pixels, permuted
        self.rnn = registry.recurrent(norm, input_size, hidden_size, max_length)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        if x.ndim == 4:
            x = image_to_sequence(x, self.pixels, self.permuted)
        elif x.ndim != 3:
            raise ValueError(f"LSTMClassifier expects images (N, C, H, W) or sequences (N, T, F), "
                             f"got shape {tuple(x.shape)}")
        _, (h_n, _) = self.rnn(x)
        return self.classifier(h_n[-1])

    def extra_repr(self):
        return f"norm={self.norm!r}, pixels={self.pixels}, permuted={self.permuted}"


def build_sequence_model(image_shape, num_classes=10, norm="bn", pixels=False, hidden_size=128,
                         permuted=False):
    """An :class:`LSTMClassifier` for images of ``image_shape`` (C, H, W)."""
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    c, h, w = image_shape
    input_size, steps = (c, h * w) if pixels else (c * w, h)
    return LSTMClassifier(input_size, hidden_size, num_classes, norm=norm, max_length=steps,
                          pixels=pixels, permuted=permuted)
