"""The models that ``tinynorm train`` builds, with the normalization chosen by ``--norm``.

A norm layer goes where the literature puts it: after the conv/linear layer
and before the ReLU (BN, BRN, CmBN, CBN, GN, LN, IN, RMSNorm) in the CNN, and
after the ReLU in the seed article's MLP; ``NormOptions(placement='before' |
'after')`` moves these feature norms to the other side of the ReLU in either
model. FRN+TLU replaces BN+ReLU; LRN follows the ReLU, as in AlexNet; weight
normalization reparameterizes the conv/linear layer itself.
"""
from . import nn

NORMS = ("bn", "brn", "cbn", "cmbn", "gn", "ln", "in", "frn", "lrn", "wn", "rms", "none")
MLP_NORMS = tuple(n for n in NORMS if n not in ("in", "lrn"))
CNN_NORMS = NORMS
FEATURE_NORMS = ("bn", "brn", "cmbn", "gn", "ln", "in", "rms", "none")
PLACEMENTS = ("before", "after")


class NormOptions:
    """Settings of the norms that have any: GN groups, CBN window/burn-in, CmBN subdivisions,
    the Batch Renorm schedule (warmup, rmax step, dmax step), the LRN window size, and where a
    feature norm sits: ``placement`` 'before' or 'after' the ReLU (None: the model's own place)."""

    def __init__(self, groups=8, window=4, burn_in=100, subdivisions=4,
                 renorm_schedule=(100, 400, 250), lrn_size=5, placement=None):
        self.groups, self.window, self.burn_in = groups, window, burn_in
        self.subdivisions, self.renorm_schedule, self.lrn_size = subdivisions, renorm_schedule, lrn_size
        self.placement = placement


def _placement(norm, opts, default):
    """'before' or 'after' the ReLU for a feature norm; refuses a placement the norm cannot take."""
    if opts.placement is None:
        return default
    if opts.placement not in PLACEMENTS:
        raise ValueError(f"placement must be 'before' or 'after' (the ReLU), got {opts.placement!r}")
    if norm == "none":
        raise ValueError("--placement does not apply to --norm none: there is no norm to place")
    if norm not in FEATURE_NORMS:
        raise ValueError(f"--placement does not apply to --norm {norm}: it has a fixed place "
                         f"(choose one of {', '.join(n for n in FEATURE_NORMS if n != 'none')})")
    return opts.placement


def _check_norm(norm, allowed, model):
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if norm not in allowed:
        why = {"in": "InstanceNorm normalizes over spatial positions, and the MLP's features have none",
               "lrn": "LRN normalizes across neighbouring channels of feature maps"}.get(norm, "")
        raise ValueError(f"--norm {norm} does not apply to --model {model}: {why}; "
                         f"use --model cnn, or one of {', '.join(allowed)}")


def _feature_norm(norm, features, spatial, opts):
    """The norm layer for (N, features, *spatial) activations, or None when the norm is elsewhere."""
    shape = (features,) + tuple(spatial)
    if norm == "bn":
        return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)
    if norm == "brn":
        cls = nn.BatchRenorm2d if spatial else nn.BatchRenorm1d
        return cls(features, schedule=opts.renorm_schedule)
    if norm == "cmbn":
        return nn.CrossMiniBatchNorm(features, subdivisions=opts.subdivisions)
    if norm == "gn":
        if features % opts.groups:
            raise ValueError(f"--groups {opts.groups} does not divide the {features} channels")
        return nn.GroupNorm(opts.groups, features)
    if norm == "ln":
        return nn.LayerNorm(shape)
    if norm == "in":
        return nn.InstanceNorm2d(features, affine=True)
    if norm == "rms":
        return nn.RMSNorm(shape)
    return None


def _block(layer, norm, features, spatial, opts):
    """[layer -> norm -> activation] as a list of modules, for every ``--norm``."""
    place = _placement(norm, opts, "before")
    if norm == "cbn":
        return [nn.CrossIterationBatchNorm(layer, window=opts.window, burn_in=opts.burn_in),
                nn.ReLU()]
    if norm == "frn":
        return [layer, nn.FilterResponseNorm2d(features, learnable_eps=not spatial)]
    if norm == "wn":
        return [nn.utils.weight_norm(layer), nn.ReLU()]
    if norm == "lrn":
        return [layer, nn.ReLU(), nn.LocalResponseNorm(opts.lrn_size)]
    block = [layer, _feature_norm(norm, features, spatial, opts) or nn.Identity(), nn.ReLU()]
    if place == "after":
        block[1], block[2] = block[2], block[1]
    return block


def _has_shift(norm):
    """Whether the norm after a layer has its own shift (so the layer needs no bias)."""
    return norm not in ("none", "wn", "lrn", "rms")



class MLP(nn.Module):
    """Linear -> ReLU -> norm -> Linear, the network of the seed article on BN.

    The norm follows the ReLU as there (``placement='before'`` puts a feature
    norm between the Linear and the ReLU instead); the norms that act on the layer itself
    (CBN owns it, weight norm reparameterizes it) and FRN+TLU (which replaces
    the ReLU) take the first layer's place instead.
    """

    def __init__(self, in_features, num_classes=10, hidden=128, norm="bn", options=None):
        super().__init__()
        _check_norm(norm, MLP_NORMS, "mlp")
        opts = options or NormOptions()
        self.flatten = nn.Flatten()
        self.layer1 = nn.Linear(in_features, hidden, bias=not _has_shift(norm))
        self.relu = nn.ReLU()
        self.norm = nn.Identity()
        if norm == "cbn":
            self.layer1 = nn.CrossIterationBatchNorm(self.layer1, window=opts.window,
                                                     burn_in=opts.burn_in)
        elif norm == "wn":
            self.layer1 = nn.utils.weight_norm(self.layer1)
        elif norm == "frn":
            self.relu = nn.FilterResponseNorm2d(hidden, learnable_eps=True)
        else:
            self.norm = _feature_norm(norm, hidden, (), opts) or nn.Identity()
        self.norm_first = _placement(norm, opts, "after") == "before"
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
        _check_norm(norm, CNN_NORMS, "cnn")
        opts = options or NormOptions()
        layers = []
        c = in_channels
        h, w = image_size
        for width in widths:
            conv = nn.Conv2d(c, width, 3, padding=1, bias=not _has_shift(norm))
            layers += _block(conv, norm, width, (h, w), opts) + [nn.MaxPool2d(2)]
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
        if norm not in ("bn", "ln", "none"):
            raise ValueError(f"--norm {norm} does not apply to --model lstm: it has recurrent BN "
                             "(--norm bn), layer norm (--norm ln) or none")
        if options is not None and options.placement is not None:
            raise ValueError("--placement applies to the MLP and the CNN, not to --model lstm")
        from .sequence_models import build_sequence_model
        return build_sequence_model(image_shape, num_classes, norm, pixels=pixels or permuted,
                                    permuted=permuted)
    raise ValueError(f"unknown model {name!r}; choose mlp, cnn or lstm")
