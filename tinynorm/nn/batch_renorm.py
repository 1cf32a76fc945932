"""BatchRenorm1d/2d modules and the r/d clipping schedule of Ioffe (2017).

See :func:`tinynorm.ops.batch_renorm.batch_renorm` for the formula (Batch
Renormalization, Algorithm 1). PyTorch has no such module; names and
conventions follow BatchNorm's where they carry over.

state_dict: ``weight``, ``bias``, ``running_mean``, ``running_std``,
``num_batches_tracked``. Unlike BatchNorm there is no ``running_var``: the
algorithm keeps a moving *standard deviation* ``sigma`` (of
``sqrt(var_B + eps)``, biased batch variance), because ``r = sigma_B/sigma``
and inference ``(x - mu)/sigma`` are defined on it. A moving average of
standard deviations is not the square root of a moving average of variances,
so storing a variance would change the numbers; a BatchNorm checkpoint can be
converted approximately with ``running_std = sqrt(running_var + eps)``.
"""
from collections.abc import Mapping

import numpy as np

from .. import checks, dtypes
from ..ops.batch_renorm import batch_renorm
from ..tensor import Tensor
from .module import Module, Parameter

PAPER_SCHEDULE = {"warmup_steps": 5000, "rmax_steps": 40000, "dmax_steps": 25000}


def renorm_schedule(step, warmup_steps=5000, rmax_steps=40000, dmax_steps=25000, rmax=3.0,
                    dmax=5.0):
    """``(rmax_t, dmax_t)`` at training step ``step`` (0-based count of batches seen).

    Ioffe (2017), sec. 4: ``rmax = 1, dmax = 0`` (plain BatchNorm) for the
    first ``warmup_steps`` steps, then relaxed linearly, reaching ``rmax`` at
    step ``rmax_steps`` and ``dmax`` at step ``dmax_steps`` and staying there.
    The defaults are the paper's: 5000, 40000 (rmax = 3) and 25000 (dmax = 5).
    A limit whose step count is <= ``warmup_steps`` jumps to its final value
    at ``warmup_steps`` (``(0, 0, 0)``: the final limits from the first step).
    """
    if not step >= 0:
        raise ValueError(f"renorm_schedule: step must be >= 0, got {step}")
    if not min(warmup_steps, rmax_steps, dmax_steps) >= 0:
        raise ValueError("renorm_schedule: step counts must be >= 0, got "
                         f"{(warmup_steps, rmax_steps, dmax_steps)}")
    if not (rmax >= 1 and dmax >= 0):
        raise ValueError(f"renorm_schedule: need rmax >= 1 and dmax >= 0, got {rmax}, {dmax}")
    if step < warmup_steps:
        return 1.0, 0.0

    def ramp(end):
        return 1.0 if end <= warmup_steps else min(1.0, (step - warmup_steps) / (end - warmup_steps))

    return 1.0 + (rmax - 1.0) * ramp(rmax_steps), dmax * ramp(dmax_steps)


def _step_counts(schedule):
    if schedule is None:
        return dict(PAPER_SCHEDULE)
    if isinstance(schedule, Mapping):
        unknown = set(schedule) - set(PAPER_SCHEDULE)
        if unknown:
            raise ValueError(f"schedule: unknown keys {sorted(unknown)}; expected some of "
                             f"{sorted(PAPER_SCHEDULE)}")
        return {**PAPER_SCHEDULE, **schedule}
    counts = tuple(schedule)
    if len(counts) != 3:
        raise ValueError("schedule must be None, a callable step -> (rmax, dmax), a mapping, or "
                         f"(warmup_steps, rmax_steps, dmax_steps); got {schedule!r}")
    return dict(zip(("warmup_steps", "rmax_steps", "dmax_steps"), counts))


class _BatchRenorm(Module):
    _expected_ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.01, affine=True, rmax=3.0, dmax=5.0,
                 schedule=None, dtype=np.float32):
        """``rmax``/``dmax``: the limits the schedule relaxes to. ``schedule``: ``None`` (the
        paper's step counts, see :func:`renorm_schedule`), ``(warmup_steps, rmax_steps,
        dmax_steps)`` or a mapping with those keys, or a callable ``step -> (rmax, dmax)``
        (then ``rmax``/``dmax`` are not used)."""
        dtype = dtypes.parameter(dtype, type(self).__name__)
        super().__init__()
        name = type(self).__name__
        checks.integer(num_features, f"{name}: num_features", 1)
        checks.eps(eps, f"{name}: eps")
        checks.momentum(momentum, f"{name}: momentum")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        self.rmax, self.dmax = rmax, dmax
        if callable(schedule):
            self.schedule = schedule
        else:
            counts = _step_counts(schedule)
            renorm_schedule(0, rmax=rmax, dmax=dmax, **counts)
            self.schedule = counts
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
        self.register_buffer("running_std", Tensor(np.ones(num_features, dtype=dtype)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))

    def reset_running_stats(self):
        self.running_mean.data[...] = 0
        self.running_std.data[...] = 1
        self.num_batches_tracked.data[...] = 0

    def renorm_limits(self, step=None):
        """``(rmax, dmax)`` at ``step`` (default: the next training step, ``num_batches_tracked``)."""
        if step is None:
            step = int(self.num_batches_tracked.data)
        if callable(self.schedule):
            rmax, dmax = self.schedule(step)
            return float(rmax), float(dmax)
        return renorm_schedule(step, rmax=self.rmax, dmax=self.dmax, **self.schedule)

    def _check_input(self, x):
        if x.ndim not in self._expected_ranks:
            ranks = " or ".join(f"{r}D" for r in self._expected_ranks)
            raise ValueError(f"{type(self).__name__} expected {ranks} input, got {x.ndim}D input "
                             f"of shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got input with "
                             f"{x.shape[1]} channels (shape {tuple(x.shape)})")

    def forward(self, x):
        self._check_input(x)
        if not self.training:
            return batch_renorm(x, self.running_mean, self.running_std, self.weight, self.bias,
                                training=False)
        rmax, dmax = self.renorm_limits()
        out = batch_renorm(x, self.running_mean, self.running_std, self.weight, self.bias,
                           training=True, momentum=self.momentum, eps=self.eps, rmax=rmax,
                           dmax=dmax)
        self.num_batches_tracked.data[...] += 1
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, rmax={self.rmax}, dmax={self.dmax}")


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L) input."""
    _expected_ranks = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization over (N, C, H, W) input."""
    _expected_ranks = (4,)
