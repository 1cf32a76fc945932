"""Double backward of Weight Normalization, for ``create_graph=True``.

:class:`WeightNormGrad` is ``WeightNorm``'s backward as a tape op: its
forward is the fused first-order backward (kernels unchanged), returning
grad_v and grad_g packed in one array; its backward is the analytic double
backward. Per slice along ``dim``, with ``n = ||v||``, ``vh = v / n``,
``s = g / n``, sums ``<a, b>`` over the slice and the projector
``R(a) = a - vh <a, vh>``, the first order is

    grad_g = <gw, vh>,        grad_v = s R(gw).

Given the gradients ``u`` (at grad_v) and ``u_g`` (at grad_g), with
``d vh / d v = R / n`` and ``d n / d v = vh``:

    d/dgw = s R(u) + u_g vh
    d/dg  = <u, R(gw)> / n
    d/dv  = -(s / n) (vh <u, R(gw)> + <gw, vh> R(u) + <u, vh> R(gw)) + u_g R(gw) / n

A third order raises. Reference: Salimans & Kingma 2016; PyTorch's
``_weight_norm_interface_backward`` differentiates the same first order.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ..graph import pack, unpack, unpack_arrays
from .weight_norm import as_dim_3d


class WeightNormGrad(Function):
    """Inputs (v, g, grad_w); output grad_v and grad_g packed."""

    def forward(self, v, g, gw, *, first, layout):
        self.save_for_backward(v, gw)
        self.g64, self.dim = first.saved[1], first.dim
        flat, self.shapes = pack(first.backward(gw), v.dtype)
        layout["shapes"] = self.shapes
        self.metas = [(v.shape, v.dtype), (g.shape, g.dtype), (gw.shape, gw.dtype)]
        return flat

    def backward(self, flat):
        v, gw = self.saved
        u, u_g = unpack_arrays(flat, self.shapes)
        v3 = as_dim_3d(v, self.dim).astype(np.float64)
        gw3 = as_dim_3d(gw, self.dim).astype(np.float64)
        u3 = v3 * 0 if u is None else as_dim_3d(u.reshape(v.shape), self.dim)
        col = (1, -1, 1)
        u_g = u_g.reshape(col)

        def dot(a, b):
            return (a * b).sum(axis=(0, 2), keepdims=True)

        n = get_array_module(v3).sqrt(dot(v3, v3))
        vh = v3 / n
        s = self.g64.reshape(col) / n

        def proj(a):
            return a - vh * dot(a, vh)

        r_gw, r_u = proj(gw3), proj(u3)
        u_r_gw, gw_vh, u_vh = dot(u3, r_gw), dot(gw3, vh), dot(u3, vh)
        d_gw = s * r_u + u_g * vh
        d_g = u_r_gw / n
        d_v = -(s / n) * (vh * u_r_gw + gw_vh * r_u + u_vh * r_gw) + u_g * r_gw / n
        return tuple(a.reshape(shape).astype(dtype, copy=False)
                     for a, (shape, dtype) in zip((d_v, d_g, d_gw), self.metas))


def graph_grads(first, grad, inputs):
    layout = {}
    packed = WeightNormGrad.apply(inputs[0], inputs[1], grad, first=first, layout=layout)
    return tuple(unpack(packed, layout["shapes"]))
