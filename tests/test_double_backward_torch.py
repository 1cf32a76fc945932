"""Second order against PyTorch: a gradient penalty (WGAN-GP) differentiated to the parameters, in float32."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.nn as tnn
from tinynorm.autograd import grad

torch = pytest.importorskip("torch")

TOL = 1e-5


def copy_params(ours, theirs):
    for (name, p), (tname, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        p.data[...] = q.detach().numpy()


def penalty_grads_tinynorm(model, x):
    x = tn.tensor(x, requires_grad=True)
    out = model(x)
    (gx,) = grad(out.sum(), x, create_graph=True)
    norms = ((gx.reshape(x.shape[0], -1) ** 2).sum(dim=1) + 1e-12) ** 0.5
    penalty = ((norms - 1) ** 2).mean()
    params = [p for _, p in model.named_parameters()]
    grads = grad(penalty, params + [x], allow_unused=True)
    return float(penalty.item()), [None if g is None else g.numpy() for g in grads]


def penalty_grads_torch(model, x):
    x = torch.tensor(x, requires_grad=True)
    out = model(x)
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    norms = ((gx.reshape(x.shape[0], -1) ** 2).sum(dim=1) + 1e-12) ** 0.5
    penalty = ((norms - 1) ** 2).mean()
    params = [p for _, p in model.named_parameters()]
    grads = torch.autograd.grad(penalty, params + [x], allow_unused=True)
    return float(penalty.item()), [None if g is None else g.numpy() for g in grads]


def max_abs_diff(ours, theirs):
    pen_a, ga = ours
    pen_b, gb = theirs
    assert abs(pen_a - pen_b) <= TOL * max(1.0, abs(pen_b))
    assert [a is None for a in ga] == [b is None for b in gb], "unused inputs differ from torch's"
    return max(float(np.max(np.abs(a - b))) for a, b in zip(ga, gb) if b is not None)


def conv_bn_relu_linear(lib, train):
    torch.manual_seed(0)
    model = lib.Sequential(lib.Conv2d(2, 3, 3, padding=1), lib.BatchNorm2d(3), lib.ReLU(),
                           lib.Flatten(), lib.Linear(3 * 4 * 4, 1))
    return model.train() if train else model.eval()


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_gradient_penalty_conv_bn_relu_linear_matches_torch(train):
    x = np.random.default_rng(1).standard_normal((4, 2, 4, 4)).astype(np.float32)
    theirs = conv_bn_relu_linear(torch.nn, train)
    if not train:
        with torch.no_grad():
            theirs[1].running_mean.uniform_(-0.5, 0.5)
            theirs[1].running_var.uniform_(0.5, 1.5)
    ours = conv_bn_relu_linear(tnn, train)
    copy_params(ours, theirs)
    for name, b in theirs.named_buffers():
        dict(ours.named_buffers())[name].data[...] = b.numpy()
    diff = max_abs_diff(penalty_grads_tinynorm(ours, x), penalty_grads_torch(theirs, x))
    print(f"conv-bn-relu-linear ({'train' if train else 'eval'}) max abs diff {diff:.3g}")
    assert diff <= TOL


def test_gradient_penalty_layer_norm_matches_torch():
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 1))
    with torch.no_grad():
        theirs[1].weight.uniform_(0.5, 1.5)
        theirs[1].bias.uniform_(-0.5, 0.5)
    ours = tnn.Sequential(tnn.Linear(6, 8), tnn.LayerNorm(8), tnn.Tanh(), tnn.Linear(8, 1))
    copy_params(ours, theirs)
    diff = max_abs_diff(penalty_grads_tinynorm(ours, x), penalty_grads_torch(theirs, x))
    print(f"linear-layernorm-tanh-linear max abs diff {diff:.3g}")
    assert diff <= TOL


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "exp", "log_softmax", "softmax"])
def test_a_hook_on_an_output_sees_the_second_order_flow_through_it_as_in_torch(op):
    """The double backward of tanh, sigmoid, exp and (log_)softmax is written with the op's
    output, so a hook on that output scales the second-order terms too, as in torch."""
    import tinynorm.functional as F
    ops = {"tanh": (lambda x: x.tanh(), lambda x: x.tanh()),
           "sigmoid": (lambda x: x.sigmoid(), lambda x: x.sigmoid()),
           "exp": (lambda x: x.exp(), lambda x: x.exp()),
           "log_softmax": (lambda x: F.log_softmax(x, dim=0), lambda x: torch.log_softmax(x, 0)),
           "softmax": (lambda x: F.softmax(x, dim=0), lambda x: torch.softmax(x, 0))}
    ours, theirs = ops[op]
    xs = np.array([0.3, -1.2, 0.7])
    x = tn.tensor(xs, requires_grad=True)
    y = ours(x)
    y.register_hook(lambda g: g * 3)
    (gx,) = grad((y * y).sum(), x, create_graph=True)
    (h,) = grad(gx.sum(), x)
    xt = torch.tensor(xs, requires_grad=True)
    yt = theirs(xt)
    yt.register_hook(lambda g: g * 3)
    (gxt,) = torch.autograd.grad((yt * yt).sum(), xt, create_graph=True)
    (ht,) = torch.autograd.grad(gxt.sum(), xt)
    np.testing.assert_allclose(h.data, ht.numpy(), rtol=1e-12, atol=1e-12)
