"""Random inputs several op test files draw alike."""
import numpy as np


def affine_inputs(seed, shape, c):
    """The generator of ``seed`` and what it draws first, in this order: ``x`` standard normal of
    ``shape``, a weight uniform in [0.5, 2) and a standard normal bias, both of ``c`` values."""
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal(shape), rng.uniform(0.5, 2, c), rng.standard_normal(c)
