"""The global random generator used by initializers and dropout."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the global generator (like ``torch.manual_seed``)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    return _generator
