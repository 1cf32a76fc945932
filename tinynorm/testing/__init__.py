"""Gradient checking and hypothesis strategies, for tinynorm's tests and users' own ops.

- :func:`check_op`: an op against a float64 oracle, finite differences,
  float32 against float64 and CPU against CUDA, on hypothesis-drawn inputs;
- :func:`gradcheck`: the finite-difference check alone, on given arrays;
- :func:`gradgradcheck`: the second-order check (double backward against
  finite differences of the first-order gradient);
- strategies (:mod:`tinynorm.testing.strategies`), including the inputs that
  break normalization code: constant slices, ``|mean| >> std``, tiny and huge
  scales, NaN and Inf.
"""
from .checker import TOLERANCES, CheckFailure, CheckReport, check_op, default_devices
from .gradcheck import gradcheck, numerical_grad
from .gradgradcheck import gradgradcheck
from .strategies import (arrays, constant_slices, hard_arrays, normal_arrays, offset_arrays,
                         scaled_arrays, shapes, with_nonfinite)

__all__ = ["check_op", "CheckFailure", "CheckReport", "TOLERANCES", "default_devices", "gradcheck",
           "gradgradcheck", "numerical_grad", "shapes", "arrays", "normal_arrays", "constant_slices",
           "offset_arrays", "scaled_arrays", "hard_arrays", "with_nonfinite"]
