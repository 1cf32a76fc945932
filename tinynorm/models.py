"""The models that ``tinynorm train`` builds."""
from . import nn

NORMS = ("bn", "none")


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


class MLP(nn.Module):
    """Linear (no bias) -> ReLU -> BatchNorm1d -> Linear, as in the seed article on BN.

    With ``norm='none'`` the first layer keeps its bias and BN is left out.
    """

    def __init__(self, in_features, num_classes=10, hidden=128, norm="bn"):
        super().__init__()
        _check_norm(norm)
        self.flatten = nn.Flatten()
        self.layer1 = nn.Linear(in_features, hidden, bias=norm == "none")
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(hidden) if norm == "bn" else nn.Identity()
        self.layer2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.layer2(self.norm(self.relu(self.layer1(self.flatten(x)))))


class CNN(nn.Module):
    """Two [3x3 conv -> BN -> ReLU -> 2x2 max-pool] blocks, then a linear classifier."""

    def __init__(self, in_channels, image_size, num_classes=10, widths=(32, 64), norm="bn"):
        super().__init__()
        _check_norm(norm)
        layers = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=norm == "none"),
                       nn.BatchNorm2d(w) if norm == "bn" else nn.Identity(),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        h, w = image_size
        for _ in widths:
            h, w = h // 2, w // 2
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c * h * w, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def build_model(name, image_shape, num_classes=10, norm="bn"):
    """``name`` is 'mlp' or 'cnn'; ``image_shape`` is (C, H, W)."""
    c, h, w = image_shape
    if name == "mlp":
        return MLP(c * h * w, num_classes, norm=norm)
    if name == "cnn":
        return CNN(c, (h, w), num_classes, norm=norm)
    raise ValueError(f"unknown model {name!r}; choose mlp or cnn")
