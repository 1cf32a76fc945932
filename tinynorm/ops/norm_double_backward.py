"""Double backward of the normalizations: BatchNorm, Group/Layer/Instance Norm, RMSNorm.

With ``create_graph=True`` a norm's backward is a Function of its own
(``BatchNormGrad``, ``GroupNormGrad``, ``RMSNormGrad``): its forward is the
norm's fused first-order backward kernel, unchanged, returning dx, dgamma and
dbeta packed in one array; its backward is the analytic double backward
below, on raw float64 arrays. A third order raises (these Functions have no
``backward_graph``).

The math, once for all of them. A row is the set of M values normalized
together (BN: a channel over (N, *spatial); GN: a (sample, group); LN: a
sample; RMSNorm: a row of D values). Write ``<a>`` for a row mean, ``S a`` for
a row sum, ``sigma`` for the row's 1/sqrt(var + eps) (RMSNorm:
1/sqrt(mean(x^2) + eps)), ``xhat = (x - mean) sigma`` (RMSNorm: ``x sigma``),
``h = gamma g`` for the incoming gradient ``g``, and the self-adjoint projector

    P(a) = a - <a> - xhat <a xhat>        (RMSNorm: P(a) = a - xhat <a xhat>).

First order: ``dx = sigma P(h)``, ``dgamma = sum g xhat``, ``dbeta = sum g``
(the parameter sums run over every axis but gamma's). Given the gradients
``u``, ``u_gamma``, ``u_beta`` that arrive at dx, dgamma, dbeta, with
``A = S u xhat``, ``B = S h xhat``, ``C = S u (h - <h>)`` (RMSNorm:
``C = S u h``) and ``q = u_gamma g``, and using
``d xhat_j / d x_i = sigma P_ij`` and ``d sigma / d x_i = -sigma^2 xhat_i / M``:

    d/dg      = gamma sigma P(u) + u_gamma xhat + u_beta
    d/dgamma  = sum g sigma P(u)
    d/dx      = sigma^2 / M (-C xhat + A B xhat / M - B P(u) - A P(h)) + sigma P(q)

With constant statistics (BN in eval mode): ``dx = gamma sigma g``, so
``d/dg = gamma sigma u + u_gamma xhat + u_beta``, ``d/dgamma = sum g sigma u``
and ``d/dx = sigma q``.

References: PyTorch's ``batchnorm_double_backward`` (aten/src/ATen/native/
Normalization.cpp) and ``layer_norm_double_backward``
(torch/csrc/autograd/FunctionsManual.cpp) compute the same quantities.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..graph import pack, unpack, unpack_arrays


def double_backward(x, g, u, u_gamma, u_beta, gamma, mean, sigma, axes, batch_stats):
    """(d/dx, d/dg, elementwise d/dgamma) of ``<u, dx> + <u_gamma, dgamma> + <u_beta, dbeta>``.

    All arrays float64 and broadcastable against ``x``; ``axes`` are the row
    axes; ``mean`` None means RMSNorm (no centering); ``gamma``, ``u_gamma``,
    ``u_beta`` may be None. The d/dgamma returned is still to be summed over
    the non-parameter axes.
    """
    center = mean is not None
    m = 1
    for a in axes:
        m *= x.shape[a]

    def rsum(a):
        return a.sum(axis=axes, keepdims=True)

    xhat = (x - mean) * sigma if center else x * sigma

    def proj(a):
        out = a - xhat * (rsum(a * xhat) / m)
        return out - rsum(a) / m if center else out

    gam = 1.0 if gamma is None else gamma
    h = g * gam
    q = 0.0 if u_gamma is None else u_gamma * g
    if batch_stats:
        pu = proj(u)
        a_, b_ = rsum(u * xhat), rsum(h * xhat)
        c_ = rsum(u * (h - rsum(h) / m)) if center else rsum(u * h)
        gx = sigma * sigma / m * (-c_ * xhat + a_ * b_ * xhat / m - b_ * pu - a_ * proj(h))
        if u_gamma is not None:
            gx = gx + sigma * proj(q)
    else:
        pu = u
        gx = sigma * q if u_gamma is not None else x * 0
    gg = gam * sigma * pu
    if u_gamma is not None:
        gg = gg + u_gamma * xhat
    if u_beta is not None:
        gg = gg + u_beta
    return gx, gg, g * sigma * pu


class _NormGrad(Function):
    """A norm's first-order backward as a tape op: inputs (x, weight, g), ``weight`` possibly None;
    output the norm's gradients packed."""

    def forward(self, x, weight, g, *, first, layout):
        grads = first.backward(g)
        flat, self.shapes = pack(grads, x.dtype)
        layout["shapes"] = self.shapes
        self.layouts = [None if a is None else (a.shape, a.dtype) for a in (x, weight, g)]
        return flat

    def backward(self, flat):
        gx, gg, ggamma = self.second(unpack_arrays(flat, self.shapes))
        return tuple(None if a is None or layout is None
                     else a.reshape(layout[0]).astype(layout[1], copy=False)
                     for a, layout in zip((gx, ggamma, gg), self.layouts))


def graph_grads(first, g, inputs, grad_cls, **layout):
    """The norm node's gradients as Tensors cut from one ``grad_cls`` node (``first`` is the norm's Function).

    ``inputs`` are the norm's (x, weight, ...), weight possibly None.
    """
    packed = grad_cls.apply(inputs[0], inputs[1], g, first=first, layout=layout)
    return tuple(unpack(packed, layout["shapes"]))


class BatchNormGrad(_NormGrad):
    """BatchNorm's backward; rows are channels of the (N, C, S) view."""

    def forward(self, x, weight, g, *, first, layout):
        x3, gamma = first.saved
        self.save_for_backward(x3, g)
        self.stats = (first.mean, first.invstd, first.batch_stats, gamma)
        return super().forward(x, weight, g, first=first, layout=layout)

    def second(self, parts):
        x3, g = self.saved
        xp = get_array_module(x3)
        mean, invstd, batch_stats, weight = self.stats
        n, c, s = x3.shape
        col = (1, c, 1)
        u, u_gamma, u_beta = parts
        u = xp.zeros(x3.shape) if u is None else u.reshape(x3.shape)
        gamma = None if weight is None else weight.astype(np.float64).reshape(col)
        gx, gg, ggamma = double_backward(
            x3.astype(np.float64), g.reshape(x3.shape).astype(np.float64), u,
            None if u_gamma is None else u_gamma.reshape(col),
            None if u_beta is None else u_beta.reshape(col), gamma,
            mean.reshape(col), invstd.reshape(col), (0, 2), batch_stats)
        return gx, gg, ggamma.sum(axis=(0, 2))


class GroupNormGrad(_NormGrad):
    """GroupNorm's (and LayerNorm's, InstanceNorm's) backward; rows of the (N, G, K, S) view."""

    def forward(self, x, weight, g, *, first, layout):
        x4, w = first.saved
        self.save_for_backward(x4, g)
        self.stats = (first.mean, first.rstd, w)
        return super().forward(x, weight, g, first=first, layout=layout)

    def second(self, parts):
        x4, g = self.saved
        mean, rstd, w = self.stats
        n, gr, k, s = x4.shape
        slot, row = (1, gr, k, 1), (n, gr, 1, 1)
        u, u_gamma, u_beta = parts
        u = get_array_module(x4).zeros(x4.shape) if u is None else u.reshape(x4.shape)
        gx, gg, ggamma = double_backward(
            x4.astype(np.float64), g.reshape(x4.shape).astype(np.float64), u,
            None if u_gamma is None else u_gamma.reshape(slot),
            None if u_beta is None else u_beta.reshape(slot),
            None if w is None else w.reshape(slot), mean.reshape(row), rstd.reshape(row),
            (2, 3), True)
        return gx, gg, ggamma.sum(axis=(0, 3))


class RMSNormGrad(_NormGrad):
    """RMSNorm's backward; rows of the (R, D) view, no centering."""

    def forward(self, x, weight, g, *, first, layout):
        x2, w, rstd = first.saved
        self.save_for_backward(x2, g)
        self.stats = (rstd, w)
        return super().forward(x, weight, g, first=first, layout=layout)

    def second(self, parts):
        x2, g = self.saved
        rstd, w = self.stats
        u, u_gamma = parts
        u = get_array_module(x2).zeros(x2.shape) if u is None else u.reshape(x2.shape)
        gx, gg, ggamma = double_backward(
            x2.astype(np.float64), g.reshape(x2.shape).astype(np.float64), u,
            None if u_gamma is None else u_gamma.reshape(1, -1), None,
            None if w is None else w.astype(np.float64).reshape(1, -1), None,
            rstd.reshape(-1, 1), (1,), True)
        return gx, gg, ggamma.sum(axis=0)
