"""BatchRenorm1d/2d modules and the r/d clipping schedule of Ioffe (2017).

The op is :func:`tinynorm.functional.batch_renorm` (its docstring holds the
formula). The modules are BatchNorm modules whose second buffer is a moving
*standard deviation* ``running_std`` instead of ``running_var`` (``r = sigma_B/sigma``
and inference ``(x - mu)/sigma`` are defined on it, and a moving average of
standard deviations is not the square root of one of variances; a BatchNorm
checkpoint converts approximately with ``running_std = sqrt(running_var + eps)``),
and which relax ``rmax``/``dmax`` on a schedule. PyTorch has no such module.

state_dict: ``weight``, ``bias``, ``running_mean``, ``running_std``, ``num_batches_tracked``.
"""
from collections.abc import Mapping

import numpy as np

from .. import checks
from .. import functional as F
from .batch_norm import _BatchNorm

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


class _BatchRenorm(_BatchNorm):
    """A ``_BatchNorm`` that keeps ``running_std``, always tracks it, and calls ``batch_renorm``
    with the limits of :meth:`renorm_limits`."""

    _spread = "running_std"

    def __init__(self, num_features, eps=1e-5, momentum=0.01, affine=True, rmax=3.0, dmax=5.0,
                 schedule=None, dtype=np.float32):
        """``rmax``/``dmax``: the limits the schedule relaxes to. ``schedule``: ``None`` (the
        paper's step counts, see :func:`renorm_schedule`), ``(warmup_steps, rmax_steps,
        dmax_steps)`` or a mapping with those keys, or a callable ``step -> (rmax, dmax)``
        (then ``rmax``/``dmax`` are not used)."""
        super().__init__(num_features, eps, momentum, affine, True, dtype)
        self.rmax, self.dmax = rmax, dmax
        if callable(schedule):
            self.schedule = schedule
        else:
            counts = _step_counts(schedule)
            renorm_schedule(0, rmax=rmax, dmax=dmax, **counts)
            self.schedule = counts

    @staticmethod
    def _check_momentum(momentum, name):
        checks.momentum(momentum, f"{name}: momentum")

    def renorm_limits(self, step=None):
        """``(rmax, dmax)`` at ``step`` (default: the next training step, ``num_batches_tracked``)."""
        if step is None:
            step = int(self.num_batches_tracked.data)
        if callable(self.schedule):
            rmax, dmax = self.schedule(step)
            return float(rmax), float(dmax)
        return renorm_schedule(step, rmax=self.rmax, dmax=self.dmax, **self.schedule)

    def forward(self, x):
        self._check_input(x)
        if not self.training:
            return F.batch_renorm(x, self.running_mean, self.running_std, self.weight, self.bias,
                                  training=False)
        rmax, dmax = self.renorm_limits()
        out = F.batch_renorm(x, self.running_mean, self.running_std, self.weight, self.bias,
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
