"""Teaches: gradients of gradients, a Hessian-vector product and a gradient-penalty (WGAN-GP) step.

``autograd.grad(..., create_graph=True)`` returns gradients that are Tensors
on the tape, so they can be differentiated again. Through the norms this runs
each norm's fused backward kernel as a Function whose own backward is the
analytic double backward.

1. Hessian-vector product of a small classifier (Linear -> LayerNorm -> Tanh
   -> Linear -> cross-entropy) with respect to its first weight:
   ``Hv = d/dW <dL/dW, v>``, checked against central differences of the
   gradient, ``(g(W + h v) - g(W - h v)) / 2h``.
2. A WGAN-GP critic (Conv2d -> BatchNorm2d -> ReLU -> Linear) trained to
   make ``||d critic / d x|| = 1`` on random points: the penalty
   ``(||grad_x critic(x)|| - 1)^2`` is differentiated to the parameters.

    python examples/second_order.py [--quick]
"""
import argparse

import numpy as np

import tinynorm as tn
import tinynorm.functional as F
import tinynorm.nn as nn
from tinynorm.autograd import grad


def hessian_vector_product():
    rng = np.random.default_rng(0)
    tn.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8, dtype=np.float64), nn.LayerNorm(8, dtype=np.float64),
                          nn.Tanh(), nn.Linear(8, 3, dtype=np.float64))
    x, target = tn.tensor(rng.standard_normal((16, 5))), rng.integers(0, 3, 16)
    w = model[0].weight
    v = rng.standard_normal(w.shape)

    def gradient():
        (g,) = grad(F.cross_entropy(model(x), target), w, create_graph=True)
        return g

    g = gradient()
    (hv,) = grad((g * tn.tensor(v)).sum(), w)
    h, base = 1e-5, w.data.copy()
    w.data[...] = base + h * v
    plus = gradient().numpy().copy()
    w.data[...] = base - h * v
    minus = gradient().numpy().copy()
    w.data[...] = base
    fd = (plus - minus) / (2 * h)
    err = np.abs(hv.numpy() - fd).max()
    print(f"Hessian-vector product: |Hv| = {np.linalg.norm(hv.numpy()):.4f}, "
          f"max |Hv - finite differences| = {err:.2e}")
    assert err < 1e-6


def gradient_penalty_training(steps):
    rng = np.random.default_rng(1)
    tn.manual_seed(1)
    critic = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                           nn.Flatten(), nn.Linear(4 * 6 * 6, 1))
    opt = tn.optim.Adam(critic.parameters(), lr=1e-2)
    for step in range(steps):
        x = tn.tensor(rng.standard_normal((16, 1, 6, 6)).astype(np.float32), requires_grad=True)
        (gx,) = grad(critic(x).sum(), x, create_graph=True)
        norms = ((gx.reshape(16, -1) ** 2).sum(dim=1) + 1e-12) ** 0.5
        penalty = ((norms - 1) ** 2).mean()
        opt.zero_grad()
        penalty.backward()
        opt.step()
        if step == 0 or step == steps - 1:
            print(f"gradient penalty step {step:3d}: penalty {penalty.item():.4f}, "
                  f"mean ||grad_x critic|| {norms.numpy().mean():.4f}")
    return penalty.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (for the tests)")
    args = parser.parse_args()
    hessian_vector_product()
    final = gradient_penalty_training(10 if args.quick else 200)
    print(f"final gradient penalty {final:.4f}")


if __name__ == "__main__":
    main()
