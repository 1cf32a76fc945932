"""The arithmetic behind every verdict: mean and spread over seeds, and when a difference counts.

A difference counts only when the spread does not cover it: ``beyond_spread(a, b)``
holds when ``mean(a) - mean(b)`` exceeds ``std(a) + std(b)`` (sample standard
deviations over seeds, so the two mean +- std intervals do not touch) and is at
least ``resolution``, the smallest step the measurement can resolve (one test
image for an accuracy, one curve interval for a step count). With one seed the
spread is unknown and only the resolution guards the call.
"""
import math

import numpy as np


def mean_std(values):
    """(mean, sample standard deviation) of ``values``; the deviation is 0 for a single value."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def beyond_spread(a, b, resolution=0.0):
    """Whether the values ``a`` exceed the values ``b`` by more than their spread and ``resolution``."""
    ma, sa = mean_std(a)
    mb, sb = mean_std(b)
    if not (math.isfinite(ma) and math.isfinite(mb)):
        return False
    gap = ma - mb
    return gap > sa + sb and gap >= resolution * (1 - 1e-9)


def differ(a, b, resolution=0.0):
    """Whether ``a`` and ``b`` differ beyond the spread, in either direction."""
    return beyond_spread(a, b, resolution) or beyond_spread(b, a, resolution)


def fmt(values, scale=100.0, digits=1, unit=""):
    """'mean +- std' of ``values`` times ``scale`` (accuracies as percent by default)."""
    m, s = mean_std(values)
    if not math.isfinite(m):
        return "-"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}{unit}"


def first_step_reaching(curve, target):
    """The first curve step whose test accuracy reaches ``target``, or None."""
    for point in curve:
        if point["test_accuracy"] is not None and point["test_accuracy"] >= target:
            return point["step"]
    return None


def first_epoch_reaching(curve, target):
    """The first epoch that ends with test accuracy >= ``target``, or None."""
    ends = {}
    for point in curve:
        ends[point["epoch"]] = point
    for epoch in sorted(ends):
        acc = ends[epoch]["test_accuracy"]
        if acc is not None and acc >= target:
            return epoch
    return None
