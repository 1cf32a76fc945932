"""``update_bn``: recompute BN's running statistics as population averages over a dataset.

The BN paper's inference statistics (Ioffe & Szegedy 2015, Algorithm 2, steps
8-11) are averages over training minibatches of the trained network:
``E[x] = E_B[mean_B]`` and ``Var[x] = m/(m-1) E_B[var_B]``. The exponential
moving averages kept during training approximate them, and lag when the
weights still move fast; this recomputes them exactly, as
``torch.optim.swa_utils.update_bn`` does: every BatchNorm layer (and every
BN-LSTM, whose statistics are per time step) is reset, switched to a
cumulative average (``momentum=None``), and fed every batch of ``loader`` in
training mode without recording the tape.
"""
from ..autograd import no_grad
from ..tensor import Tensor
from .batch_norm import _BatchNorm
from .batch_renorm import _BatchRenorm
from .lstm import BNLSTM


def update_bn(loader, model, device=None):
    """Recompute the running statistics of ``model``'s BN layers over ``loader`` (in place).

    ``loader`` yields inputs, or tuples/lists whose first element is the input
    (a ``DataLoader``'s ``(x, y)``). Layers without running statistics are
    left alone; ``model``'s training flag and the layers' momenta are restored.
    """
    layers = [m for m in model.modules()  # Batch Renorm has no momentum=None average
              if (isinstance(m, _BatchNorm) and m.track_running_stats
                  and not isinstance(m, _BatchRenorm)) or isinstance(m, BNLSTM)]
    if not layers:
        return
    momenta = {m: m.momentum for m in layers}
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = x if isinstance(x, Tensor) else Tensor(x)
                model(x if device is None else x.to(device))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.train(was_training)
