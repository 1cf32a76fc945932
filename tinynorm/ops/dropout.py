"""Inverted dropout: ``y = x * mask / (1 - p)``, ``mask ~ Bernoulli(1 - p)``.

The mask comes from tinynorm's global generator (so ``manual_seed`` makes it
repeatable on either device) and is copied to the device for CuPy inputs.
"""
from ..autograd import Function
from ..backend import get_array_module
from .. import random
from ..tensor import Tensor


class Dropout(Function):
    def forward(self, x, *, p):
        keep = random.default_generator().random(x.shape) >= p
        self.mask = get_array_module(x).asarray(keep.astype(x.dtype) / x.dtype.type(1 - p))
        return x * self.mask

    def backward(self, g):
        return g * self.mask

    def backward_graph(self, g, inputs):
        return g * Tensor(self.mask)
