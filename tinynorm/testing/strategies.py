"""Hypothesis strategies for op inputs, including the ones that break normalization code.

Every strategy takes ``shape`` as a tuple or as a strategy of tuples. Values
come from a NumPy generator seeded by hypothesis (smooth random values suit
finite differences better than shrunk corner cases), shaped by the hard case:

- :func:`constant_slices`: some slices along ``axes`` hold one value (zero variance);
- :func:`offset_arrays`: ``|mean| >> std`` (catastrophic cancellation in ``E[x^2] - E[x]^2``);
- :func:`scaled_arrays`: tiny and huge scales (``eps`` dominates, or ``x^2`` overflows float32);
- :func:`with_nonfinite`: NaN and +-Inf planted in another strategy's arrays;
- :func:`hard_arrays`: any of the above or plain normal values.
"""
import numpy as np

__all__ = ["shapes", "arrays", "normal_arrays", "constant_slices", "offset_arrays",
           "scaled_arrays", "hard_arrays", "with_nonfinite"]


def _st():
    from hypothesis import strategies as st
    return st


def _shape_strategy(shape):
    return shape if hasattr(shape, "example") else _st().just(tuple(shape))


def _seeded(shape, build):
    """Strategy of ``build(shape, rng)`` with the shape drawn and the generator seeded by hypothesis."""
    st = _st()
    return st.tuples(_shape_strategy(shape), st.integers(0, 2**32 - 1)).map(
        lambda a: build(tuple(a[0]), np.random.default_rng(a[1])))


def shapes(min_dims=1, max_dims=4, min_side=1, max_side=5):
    """Hypothesis strategy for array shapes."""
    from hypothesis.extra import numpy as hnp
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(shape, dtype=np.float64, low=-2.0, high=2.0):
    """Hypothesis strategy for finite float arrays of ``shape`` (a tuple or a strategy)."""
    from hypothesis.extra import numpy as hnp
    st = _st()
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


def normal_arrays(shape, dtype=np.float64, scale=1.0, loc=0.0):
    """Hypothesis strategy: ``loc + scale * N(0, 1)`` arrays of ``shape`` drawn from a hypothesis seed."""
    return _seeded(shape, lambda s, rng: (loc + scale * rng.standard_normal(s)).astype(dtype))


def _axes_for(axes, ndim):
    return tuple(sorted({a % ndim for a in axes if -ndim <= a < ndim}))


def constant_slices(shape, axes, dtype=np.float64):
    """Normal arrays in which some slices along ``axes`` are constant (zero variance).

    ``axes`` are the axes a statistic reduces over, e.g. ``(0, 2, 3)`` for
    BatchNorm2d's channels or ``(-1,)`` for LayerNorm's rows; axes outside the
    drawn rank are ignored. Each slice (one index of the other axes) is
    constant with probability 1/2, and at least one is; with no other axes the
    whole array is constant. The constant differs from slice to slice.
    """
    def build(s, rng):
        x = rng.standard_normal(s)
        red = _axes_for(axes, len(s))
        kept = tuple(1 if i in red else n for i, n in enumerate(s))
        value = rng.standard_normal(kept) * 2
        mask = rng.random(kept) < 0.5
        mask.reshape(-1)[rng.integers(mask.size)] = True
        return np.where(mask, value, x).astype(dtype)
    return _seeded(shape, build)


def offset_arrays(shape, ratios=(1e2, 1e3, 1e4), dtype=np.float64):
    """Arrays ``m + N(0, 1)`` with ``|m|`` one of ``ratios`` (either sign): ``|mean| >> std``."""
    def build(s, rng):
        m = rng.choice(ratios) * rng.choice([-1.0, 1.0])
        return (m + rng.standard_normal(s)).astype(dtype)
    return _seeded(shape, build)


def scaled_arrays(shape, scales=(1e-6, 1e-3, 1e3, 1e6), dtype=np.float64):
    """Arrays ``scale * N(0, 1)`` with ``scale`` one of ``scales``: tiny and huge values."""
    return _seeded(shape, lambda s, rng: (rng.choice(scales) * rng.standard_normal(s)).astype(dtype))


def hard_arrays(shape, axes=(), dtype=np.float64, offsets=(1e2, 1e3, 1e4),
                scales=(1e-6, 1e-3, 1e3, 1e6), nonfinite=False):
    """Any of: plain normal values, :func:`constant_slices` (along ``axes``, the op's reduction
    axes; None: none), :func:`offset_arrays`, :func:`scaled_arrays` and, with ``nonfinite``,
    normal values :func:`with_nonfinite`. Hypothesis shrinks towards plain normal values."""
    st = _st()
    parts = [normal_arrays(shape, dtype)]
    if axes is not None:
        parts.append(constant_slices(shape, axes, dtype))
    if offsets:
        parts.append(offset_arrays(shape, offsets, dtype))
    if scales:
        parts.append(scaled_arrays(shape, scales, dtype))
    if nonfinite:
        parts.append(with_nonfinite(normal_arrays(shape, dtype)))
    return st.one_of(*parts)


def with_nonfinite(strategy, values=(np.nan, np.inf, -np.inf), max_count=2):
    """``strategy``'s arrays with 1 to ``max_count`` elements replaced by NaN or +-Inf.

    An op must propagate them: where a naive oracle computes a non-finite
    value the op must too, and where the oracle stays finite so must the op
    (a NaN in one BatchNorm channel must not leak into the others, nor be
    zeroed). :func:`tinynorm.testing.check_op` compares the two patterns.
    """
    st = _st()

    def plant(args):
        x, seed = args
        x = np.array(x, copy=True)
        if x.size == 0:
            return x
        rng = np.random.default_rng(seed)
        flat = x.reshape(-1)
        for _ in range(int(rng.integers(1, max_count + 1))):
            flat[rng.integers(flat.size)] = values[int(rng.integers(len(values)))]
        return x
    return st.tuples(strategy, st.integers(0, 2**32 - 1)).map(plant)
