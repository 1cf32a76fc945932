"""Inverted dropout: ``y = x * mask / (1 - p)``, ``mask ~ Bernoulli(1 - p)``."""
from ..autograd import Function
from .. import random


class Dropout(Function):
    def forward(self, x, *, p):
        keep = random.default_generator().random(x.shape) >= p
        self.mask = keep.astype(x.dtype) / x.dtype.type(1 - p)
        return x * self.mask

    def backward(self, g):
        return g * self.mask
