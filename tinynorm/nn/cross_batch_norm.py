"""CmBN and Cross-Iteration BN modules; the math is in :mod:`tinynorm.ops.cross_batch_norm`.

Both keep BN's parameters and buffers (``weight``, ``bias``, ``running_mean``,
``running_var``, ``num_batches_tracked``) and BN's eval behaviour. PyTorch has
neither op, so the names follow its style.
"""
import numpy as np

from .. import checks, dtypes
from .. import functional as F
from ..ops.cross_batch_norm import (CrossIterationCombine, CrossMiniBatchCombine, IterationRecord,
                                    layer_stat_gradients, new_history)
from .batch_norm import _BatchNorm
from .layers import Conv2d, Linear


class CrossMiniBatchNorm(_BatchNorm):
    """CmBN (YOLOv4): BN whose i-th mini-batch of an optimizer step uses the statistics of 1..i.

    ``subdivisions`` (s) is the number of mini-batches one optimizer step
    accumulates; the accumulation restarts after every s training forwards, or
    when :meth:`start_step` is called (call it right after ``optimizer.step()``
    if the count of forwards per step can vary). With s = 1 it is BN.
    Accepts (N, C) or (N, C, *spatial) input.
    """

    _expected_ranks = (2, 3, 4, 5)

    def __init__(self, num_features, subdivisions=4, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "CrossMiniBatchNorm")
        checks.integer(subdivisions, "CrossMiniBatchNorm: subdivisions", 1)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.subdivisions = subdivisions
        self._step_stats = []

    def start_step(self):
        """Forget the statistics accumulated in this optimizer step."""
        self._step_stats = []

    def get_extra_state(self):
        """The (count, mean, M2) of this step's mini-batches so far."""
        return {f"step.{j}.{part}": a for j, stats in enumerate(self._step_stats)
                for part, a in zip(("count", "mean", "m2"), stats)}

    def set_extra_state(self, state):
        n = len(state) // 3
        self._step_stats = [tuple(np.array(state[f"step.{j}.{part}"], dtype=np.float64)
                                  for part in ("count", "mean", "m2")) for j in range(n)]

    def _combine(self):
        if not self.training:
            return None
        if len(self._step_stats) >= self.subdivisions:
            self._step_stats = []
        return CrossMiniBatchCombine(self._step_stats)

    def extra_repr(self):
        return super().extra_repr() + f", subdivisions={self.subdivisions}"


class CrossIterationBatchNorm(_BatchNorm):
    """Cross-Iteration BN over the output of ``layer``, a bias-free Conv2d or Linear it owns.

    ``forward(x)`` computes ``layer(x)`` and normalizes it. Owning the layer is
    what makes the pairing safe: the Taylor compensation needs the weights
    that produced exactly this input, and nothing else can be slipped in
    between. ``window`` (k) iterations are averaged, the current one included;
    for the first ``burn_in`` training iterations it is plain BN (the window
    fills meanwhile). window = 1 is BN. The state_dict holds BN's keys and
    ``layer.*``.
    """

    _expected_ranks = (2, 4)

    def __init__(self, layer, window=4, burn_in=100, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        if isinstance(layer, Conv2d):
            kind, features = "conv", layer.out_channels
        elif isinstance(layer, Linear):
            kind, features = "linear", layer.out_features
        else:
            raise ValueError(f"CrossIterationBatchNorm needs a Conv2d or Linear layer, "
                             f"got {type(layer).__name__}")
        if layer.bias is not None:
            raise ValueError("CrossIterationBatchNorm needs its layer without bias (bias=False): "
                             "BN's beta replaces it, and the Taylor step covers the weight only")
        checks.integer(window, "CrossIterationBatchNorm: window", 1)
        checks.integer(burn_in, "CrossIterationBatchNorm: burn_in", 0)
        super().__init__(features, eps, momentum, affine, track_running_stats,
                         layer.weight.data.dtype.type)
        self.layer, self.kind = layer, kind
        self.window, self.burn_in = window, burn_in
        self.iterations = 0
        self._history = new_history(window)
        self._pending = None

    def reset_window(self):
        self._history.clear()

    _RECORD = ("weight", "mu", "nu", "dmu", "dnu")

    def get_extra_state(self):
        """The iteration count and the window of past iterations (weights, statistics, gradients)."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for j, rec in enumerate(self._history):
            for part in self._RECORD:
                state[f"history.{j}.{part}"] = np.asarray(getattr(rec, part))
        return state

    def set_extra_state(self, state):
        self.iterations = int(state["iterations"])
        self._history.clear()
        for j in range((len(state) - 1) // len(self._RECORD)):
            self._history.append(IterationRecord(*(np.array(state[f"history.{j}.{part}"])
                                                   for part in self._RECORD)))

    def forward(self, x):
        y = self.layer(x)
        if self.kind == "linear" and y.ndim != 2:
            raise ValueError(f"CrossIterationBatchNorm over Linear expects (N, features) input, "
                             f"got shape {tuple(x.shape)}")
        self._pending = (x.data, y.data)
        try:
            return super().forward(y)
        finally:
            self._pending = None

    def _current(self):
        x, y = self._pending
        w = self.layer.weight.data
        if self.kind == "conv":
            lay = self.layer
            geometry = F.conv_geometry(lay.kernel_size, lay.stride, lay.padding, lay.dilation)
            dmu, dnu = layer_stat_gradients("conv", x, y, w, geometry + (lay.groups,))
        else:
            dmu, dnu = layer_stat_gradients("linear", x, y, w)
        return w.reshape(w.shape[0], -1).astype(np.float64), dmu, dnu

    def _combine(self):
        if not self.training or self.window == 1:
            return None
        self.iterations += 1
        return CrossIterationCombine(self._history, self._current,
                                     use_window=self.iterations > self.burn_in)

    def extra_repr(self):
        return (f"{self.num_features}, window={self.window}, burn_in={self.burn_in}, "
                f"eps={self.eps}, momentum={self.momentum}, affine={self.affine}")
