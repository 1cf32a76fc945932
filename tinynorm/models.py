"""The feed-forward models that ``tinynorm train`` builds (the MLP and the CNN), and
:func:`build_model`, which builds every model, the recurrent ones through
:mod:`tinynorm.sequence_models`.

Where each ``--norm`` goes is one row of :mod:`tinynorm.norm_registry`: a feature
norm sits after the conv/linear layer and before the ReLU in the CNN, and after
the ReLU in the seed article's MLP (``NormOptions(placement='before' | 'after')``
moves it to the other side in either model); FRN+TLU replaces the ReLU; LRN
follows the ReLU, as in AlexNet; CBN owns the layer and weight normalization
reparameterizes it.
"""
from . import nn
from . import norm_registry as registry
from .norm_registry import NormOptions

# The registry's keys under the names that code and tests import from here.
NORMS = tuple(registry.NORMS)
MLP_NORMS = registry.keys(model="mlp")
CNN_NORMS = registry.keys(model="cnn")


class MLP(nn.Module):
    """Linear -> ReLU -> norm -> Linear, the network of the seed article on BN.

    The norm follows the ReLU as there (``placement='before'`` puts a feature
    norm between the Linear and the ReLU instead); the norms that act on the layer itself
    (CBN owns it, weight norm reparameterizes it) and FRN+TLU (which replaces
    the ReLU) take the first layer's place instead.
    """

    def __init__(self, in_features, num_classes=10, hidden=128, norm="bn", options=None):
        super().__init__()
        registry.check(norm, "mlp")
        opts = options or NormOptions()
        self.flatten = nn.Flatten()
        self.layer1 = nn.Linear(in_features, hidden, bias=not registry.NORMS[norm].shift)
        self.relu, self.norm = nn.ReLU(), nn.Identity()
        layer, norm_layer, activation, self.norm_first = registry.block(
            norm, self.layer1, hidden, (), opts, "after")
        # Only the slot the norm takes is set again, so it is listed last (in repr and modules()).
        slot = {"layer": "layer1", "activation": "relu"}.get(registry.NORMS[norm].place, "norm")
        setattr(self, slot, {"layer1": layer, "relu": activation, "norm": norm_layer}[slot])
        self.layer2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        h = self.layer1(self.flatten(x))
        h = self.relu(self.norm(h)) if self.norm_first else self.norm(self.relu(h))
        return self.layer2(h)


class CNN(nn.Module):
    """Two [3x3 conv -> norm -> ReLU -> 2x2 max-pool] blocks, then a linear classifier."""

    def __init__(self, in_channels, image_size, num_classes=10, widths=(32, 64), norm="bn",
                 options=None):
        super().__init__()
        registry.check(norm, "cnn")
        opts = options or NormOptions()
        layers = []
        c = in_channels
        h, w = image_size
        for width in widths:
            conv = nn.Conv2d(c, width, 3, padding=1, bias=not registry.NORMS[norm].shift)
            conv, norm_layer, activation, first = registry.block(norm, conv, width, (h, w), opts,
                                                                 "before")
            after = [norm_layer, activation] if first else [activation, norm_layer]
            layers += [conv] + [m for m in after if m is not None] + [nn.MaxPool2d(2)]
            c, h, w = width, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c * h * w, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def build_model(name, image_shape, num_classes=10, norm="bn", options=None, pixels=False,
                permuted=False):
    """``name`` is 'mlp', 'cnn' or 'lstm'; ``image_shape`` is (C, H, W).

    For the LSTM, ``pixels`` reads one pixel per step instead of one row, and
    ``permuted`` reads the pixels in a fixed random order.
    """
    c, h, w = image_shape
    if permuted and name != "lstm":
        raise ValueError("--permuted reorders the pixels of --model lstm's sequences")
    if pixels and name != "lstm":
        raise ValueError(f"--pixels reads --model lstm's sequences one pixel per step; --model "
                         f"{name} takes whole images")
    if name == "mlp":
        return MLP(c * h * w, num_classes, norm=norm, options=options)
    if name == "cnn":
        return CNN(c, (h, w), num_classes, norm=norm, options=options)
    if name == "lstm":
        registry.check(norm, "lstm")
        if options is not None and options.placement is not None:
            raise ValueError("--placement applies to the MLP and the CNN, not to --model lstm")
        from .sequence_models import build_sequence_model
        return build_sequence_model(image_shape, num_classes, norm, pixels=pixels or permuted,
                                    permuted=permuted)
    raise ValueError(f"unknown model {name!r}; choose {registry.listing(registry.MODELS)}")
