"""Combine steps that reuse statistics of other mini-batches: CmBN
(:class:`CrossMiniBatchCombine`) and Cross-Iteration BN (:class:`CrossIterationCombine`).

Both are public combine objects of :func:`tinynorm.ops.batch_norm.batch_norm` (its
``combine=`` step; the nn modules import them from here). Each turns the current
mini-batch's (count m, mean mu, M2) into averaged statistics

    M = (mu + sum_j mu_j) / n,   E = (nu + sum_j nu_j) / n,   V = E - M^2

where nu = E[x^2] and the n - 1 other (mu_j, nu_j) are constants (only the
current mini-batch's statistics carry gradient). Then dM/dx = 1/(n m) and
dV/dx = 2 (x - M)/(n m), which is BN's backward with the count n*m: so the
combine returns (n*m, M, V*n*m) and BN's kernels do the rest unchanged.
"""
from collections import deque

import numpy as np

from .. import blas, buffer_pool
from ..backend import get_array_module
from ..kernels import kernels_for
from .batch_norm import chan_merge


class CrossMiniBatchCombine:
    """The combine of one CmBN forward; ``state`` is the module's list of (n_j, mu_j, M2_j) this step.

    CmBN (Bochkovskiy, Wang & Liao 2020, "YOLOv4: Optimal Speed and Accuracy of Object
    Detection"; darknet ``cbn=1``): one optimizer step consumes s mini-batches (gradient
    accumulation); the i-th uses the statistics of mini-batches 1..i of this step, each
    weighted by its count n_j: Chan's merge of the (n_j, mu_j, M2_j), so that
    ``M = sum n_j mu_j / N`` and the variance is that of BN over mini-batches 1..i for
    any sizes (with equal counts: darknet's plain average). With N = sum n_j,
    dM/dx = 1/N and dV/dx = 2 (x - M)/N for x in the current mini-batch: BN's backward
    with the count N. Reset at each step. Weights change only between steps, so no
    compensation is needed.
    """

    def __init__(self, state):
        self.state = state

    def stats(self, count, mean, m2):
        """Merge this mini-batch into the step's statistics; it is recorded only when the merge
        has more than one value per channel (else batch_norm refuses it, and the step must not
        keep it)."""
        entries = self.state + [(count.copy(), mean.copy(), m2.copy())]
        merged = chan_merge(*(np.stack([s[k] for s in entries]) for k in range(3)))
        if float(merged[0].min()) > 1:
            self.state.append(entries[-1])
        return merged

    def grad_sums(self, sum_dy, sum_dy_xmu):
        return sum_dy, sum_dy_xmu


class IterationRecord:
    """What Cross-Iteration BN keeps of one past iteration: weights, statistics, their gradients."""

    __slots__ = ("weight", "mu", "nu", "dmu", "dnu")

    def __init__(self, weight, mu, nu, dmu, dnu):
        self.weight, self.mu, self.nu, self.dmu, self.dnu = weight, mu, nu, dmu, dnu


def layer_stat_gradients(kind, x, y, weight, geometry=None):
    """(dmu, dnu) of the per-channel mean and E[y^2] with respect to each channel's weight row.

    ``kind`` is 'linear' (y = x W^T, x of shape (N, K)) or 'conv' (``geometry``
    = (stride, padding, dilation, groups)). Returns dmu of shape (C, K) and dnu
    of shape (C, K), in float64 (the products run in the input's dtype: they are the
    coefficients of a first-order correction, and float32 GEMMs keep CBN's cost near a
    weight-gradient GEMM's).
    """
    xp = get_array_module(x)
    cout = weight.shape[0]
    if kind == "linear":
        x2 = x.reshape(-1, x.shape[-1])
        y2 = y.reshape(-1, cout)
        m = max(x2.shape[0], 1)
        dmu = xp.broadcast_to(x2.mean(axis=0, dtype=np.float64), (cout, x2.shape[1]))
        dnu = blas.matmul(xp.ascontiguousarray(y2.T), x2).astype(np.float64) * (2.0 / m)
        return dmu, dnu
    (sh, sw), (ph, pw), (dh, dw), groups = geometry
    n, c, h, w = x.shape
    _, cg, kh, kw = weight.shape
    k = kernels_for("im2col", x)
    oh, ow = y.shape[2], y.shape[3]
    cols = buffer_pool.empty(xp, (c * kh * kw, n * oh * ow), x.dtype)
    k.im2col(xp.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, cols)
    m = max(n * oh * ow, 1)
    cols = cols.reshape(groups, cg * kh * kw, n * oh * ow)
    y3 = xp.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(groups, cout // groups, n * oh * ow)
    dmu = xp.repeat(cols.mean(axis=2, dtype=np.float64), cout // groups, axis=0)
    dnu = blas.matmul(y3, xp.swapaxes(cols, 1, 2)).reshape(cout, cg * kh * kw)
    dnu = dnu.astype(np.float64) * (2.0 / m)
    return dmu, dnu


class CrossIterationCombine:
    """The combine of one Cross-Iteration BN forward.

    Cross-Iteration BN (Yao, Cao, Zheng, Huang & Lin 2021, "Cross-Iteration Batch
    Normalization"): the statistics of the previous k - 1 iterations, taken with
    older weights, are moved to the current weights theta_t of the preceding
    conv/linear layer by a first-order Taylor step

        mu_c(theta_t) ~= mu_c + dmu_c/dW_c . (W_t,c - W_tau,c),   likewise nu_c,

    with ``dmu_c/dW_c = mean over positions of the input patch`` and
    ``dnu_c/dW_c = 2/M sum_p y_cp patch_p`` (channel c depends on W_c only; see
    :func:`layer_stat_gradients`). Per channel, a past iteration whose compensated
    variance nu - mu^2 is negative is dropped; ``var = max(nu_bar - mu_bar^2, 0)``.
    Defaults of the module: window k = 4, burn_in = 100 (plain BN before).

    ``history`` is the module's deque of :class:`IterationRecord` (at most
    window - 1); ``current`` is a callable returning (weight (C, K), dmu, dnu)
    for this iteration, called only when the window is in use or filling.
    """

    def __init__(self, history, current, use_window):
        self.history, self.current, self.use_window = history, current, use_window

    def stats(self, count, mean, m2):
        nu = m2 / np.where(count > 0, count, 1) + mean * mean
        weight, dmu, dnu = self.current()
        past_mu, past_nu = [], []
        if self.use_window:
            for rec in self.history:
                delta = weight - rec.weight
                mu_c = rec.mu + (delta * rec.dmu).sum(axis=1)
                nu_c = rec.nu + (delta * rec.dnu).sum(axis=1)
                past_mu.append(mu_c)
                past_nu.append(nu_c)
        if self.history.maxlen:
            self.history.append(IterationRecord(weight.copy(), mean.copy(), nu, dmu, dnu))
        if not past_mu:
            return count, mean, m2
        mus, nus = np.stack(past_mu), np.stack(past_nu)
        valid = (nus - mus * mus) >= 0
        n = 1 + valid.sum(axis=0)
        mu_bar = (mean + np.where(valid, mus, 0).sum(axis=0)) / n
        nu_bar = (nu + np.where(valid, nus, 0).sum(axis=0)) / n
        var = np.maximum(nu_bar - mu_bar * mu_bar, 0.0)
        total = count * n
        return total, mu_bar, var * total

    def grad_sums(self, sum_dy, sum_dy_xmu):
        return sum_dy, sum_dy_xmu


def new_history(window):
    """The deque a Cross-Iteration BN module keeps: the last ``window - 1`` iterations."""
    return deque(maxlen=max(window - 1, 0))
