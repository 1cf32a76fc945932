"""The one table of the norms that ``tinynorm train`` puts in its models.

Every ``--norm`` key has one :class:`Norm` row in :data:`NORMS`: its human
name, the models that take it ('mlp', 'cnn', 'lstm'), the devices it trains
on ('cpu', 'cuda'), how it is placed, and its builders. The places:

* ``feature``: a layer on the conv/linear output, before or after the ReLU
  (``NormOptions.placement``; each model has its own default);
* ``after-relu``: a feature norm whose place is fixed after the ReLU (LRN, as in AlexNet);
* ``activation``: it replaces the ReLU (FRN+TLU replaces BN+ReLU);
* ``layer``: it takes the conv/linear layer itself (CBN owns it and normalizes its
  output; weight normalization reparameterizes its weight).

``build`` makes the norm: ``build(features, spatial, options)`` for the first
three places, ``build(layer, options)`` for ``layer``; ``lstm`` makes the
recurrent layer of the LSTM classifier, ``lstm(input_size, hidden_size, max_length)``.
The CLI's choices, the models' checks, ``train``'s device and worker checks and
their error messages all read this table.
"""
from dataclasses import dataclass, field
from typing import Callable

from . import nn

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


@dataclass(frozen=True)
class Norm:
    """One row of the table (see the module docstring for ``place``, ``build`` and ``lstm``).

    ``shift``: the norm has its own shift, so the layer before it drops its bias.
    ``options``: the :class:`NormOptions` fields it reads. ``per_process``: it keeps statistics
    that workers do not synchronize. ``population``: its running statistics are what
    ``--bn-stats population`` recomputes. ``subdivisions``: mini-batches per optimizer step by
    default. ``refusals``: why a model does not take it. ``lstm_name``: what the LSTM calls it.
    """
    key: str
    name: str
    models: tuple
    devices: tuple
    place: str
    build: Callable
    shift: bool = True
    options: tuple = ()
    per_process: bool = False
    population: bool = False
    subdivisions: int = 1
    refusals: dict = field(default_factory=dict)
    lstm: Callable = None
    lstm_name: str = None


def _batch_norm(features, spatial, opts):
    return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)


def _batch_renorm(features, spatial, opts):
    cls = nn.BatchRenorm2d if spatial else nn.BatchRenorm1d
    return cls(features, schedule=opts.renorm_schedule)


def _group_norm(features, spatial, opts):
    if features % opts.groups:
        raise ValueError(f"--groups {opts.groups} does not divide the {features} channels")
    return nn.GroupNorm(opts.groups, features)


def _shape(features, spatial):
    return (features,) + tuple(spatial)


FEED_FORWARD = ("mlp", "cnn")
MODELS = FEED_FORWARD + ("lstm",)
CPU, ANY_DEVICE = ("cpu",), ("cpu", "cuda")

_ROWS = (
    Norm("bn", "BatchNorm", MODELS, ANY_DEVICE, "feature", _batch_norm, population=True,
         lstm=lambda i, h, t: nn.BNLSTM(i, h, t, batch_first=True), lstm_name="recurrent BN"),
    Norm("brn", "Batch Renorm", FEED_FORWARD, CPU, "feature", _batch_renorm,
         options=("renorm_schedule",), per_process=True),
    Norm("cbn", "Cross-Iteration BN", FEED_FORWARD, CPU, "layer",
         lambda layer, o: nn.CrossIterationBatchNorm(layer, window=o.window, burn_in=o.burn_in),
         options=("window", "burn_in"), per_process=True, population=True),
    Norm("cmbn", "Cross-mini-Batch Norm", FEED_FORWARD, CPU, "feature",
         lambda f, s, o: nn.CrossMiniBatchNorm(f, subdivisions=o.subdivisions),
         options=("subdivisions",), per_process=True, population=True, subdivisions=4),
    Norm("gn", "GroupNorm", FEED_FORWARD, ANY_DEVICE, "feature", _group_norm, options=("groups",)),
    Norm("ln", "LayerNorm", MODELS, ANY_DEVICE, "feature",
         lambda f, s, o: nn.LayerNorm(_shape(f, s)),
         lstm=lambda i, h, t: nn.LNLSTM(i, h, batch_first=True), lstm_name="layer norm"),
    Norm("in", "InstanceNorm", ("cnn",), ANY_DEVICE, "feature",
         lambda f, s, o: nn.InstanceNorm2d(f, affine=True),
         refusals={"mlp": "InstanceNorm normalizes over spatial positions, and the MLP's "
                          "features have none"}),
    Norm("frn", "Filter Response Norm + TLU", FEED_FORWARD, ANY_DEVICE, "activation",
         lambda f, s, o: nn.FilterResponseNorm2d(f, learnable_eps=not s)),
    Norm("lrn", "Local Response Norm", ("cnn",), ANY_DEVICE, "after-relu",
         lambda f, s, o: nn.LocalResponseNorm(o.lrn_size), shift=False, options=("lrn_size",),
         refusals={"mlp": "LRN normalizes across neighbouring channels of feature maps"}),
    Norm("wn", "weight normalization", FEED_FORWARD, ANY_DEVICE, "layer",
         lambda layer, o: nn.utils.weight_norm(layer), shift=False),
    Norm("rms", "RMSNorm", FEED_FORWARD, ANY_DEVICE, "feature",
         lambda f, s, o: nn.RMSNorm(_shape(f, s)), shift=False),
    Norm("none", "no norm", MODELS, ANY_DEVICE, "feature", lambda f, s, o: nn.Identity(),
         shift=False, lstm=lambda i, h, t: nn.LSTM(i, h, batch_first=True), lstm_name="none"),
)

NORMS = {row.key: row for row in _ROWS}


def keys(model=None, device=None, place=None, **flags):
    """The keys, in table order, of the norms that ``model`` takes, run on ``device``, sit at
    ``place`` and have the given flags (e.g. ``per_process=True``); None matches anything."""
    return tuple(k for k, n in NORMS.items()
                 if (model is None or model in n.models) and (device is None or device in n.devices)
                 and (place is None or n.place == place)
                 and all(getattr(n, f) == v for f, v in flags.items()))


def reading(option):
    """The keys of the norms that read the :class:`NormOptions` field ``option``."""
    return tuple(k for k, n in NORMS.items() if option in n.options)


def listing(words):
    """'a', 'a or b', 'a, b or c'."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check(norm, model):
    """Raise ValueError, saying why, unless --model ``model`` takes --norm ``norm``."""
    takes = keys(model=model)
    if norm in takes:
        return
    if model == "lstm":
        named = [f"{NORMS[k].lstm_name} (--norm {k})" for k in takes if k != "none"]
        raise ValueError(f"--norm {norm} does not apply to --model lstm: it has "
                         f"{', '.join(named)} or none")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    row = NORMS[norm]
    elsewhere = " or ".join(f"--model {m}" for m in row.models)
    raise ValueError(f"--norm {norm} does not apply to --model {model}: "
                     f"{row.refusals.get(model, '')}; use {elsewhere}, or one of {', '.join(takes)}")


def placement(norm, opts, default):
    """'before' or 'after' the ReLU for a feature norm; refuses a placement the norm cannot take."""
    if opts.placement is None:
        return default
    if opts.placement not in PLACEMENTS:
        raise ValueError(f"placement must be 'before' or 'after' (the ReLU), got {opts.placement!r}")
    if norm == "none":
        raise ValueError("--placement does not apply to --norm none: there is no norm to place")
    movable = keys(place="feature")
    if norm not in movable:
        raise ValueError(f"--placement does not apply to --norm {norm}: it has a fixed place "
                         f"(choose one of {', '.join(n for n in movable if n != 'none')})")
    return opts.placement


# Each place as (layer, norm or None, activation, norm before the activation?) from the row.
_PLACES = {
    "feature": lambda row, layer, f, s, o, first: (layer, row.build(f, s, o), nn.ReLU(), first),
    "after-relu": lambda row, layer, f, s, o, first: (layer, row.build(f, s, o), nn.ReLU(), False),
    "activation": lambda row, layer, f, s, o, first: (layer, None, row.build(f, s, o), False),
    "layer": lambda row, layer, f, s, o, first: (row.build(layer, o), None, nn.ReLU(), False),
}


def block(norm, layer, features, spatial, opts, default):
    """``norm`` placed around ``layer`` (whose output has ``features`` channels over ``spatial``):
    (layer, norm module or None, activation, whether the norm comes before the activation).
    ``default`` is the model's own placement of a feature norm, 'before' or 'after' the ReLU."""
    first = placement(norm, opts, default) == "before"
    row = NORMS[norm]
    return _PLACES[row.place](row, layer, features, spatial, opts, first)


def recurrent(norm, input_size, hidden_size, max_length):
    """The recurrent layer of the LSTM classifier for ``norm`` (batch-first)."""
    return NORMS[norm].lstm(input_size, hidden_size, max_length)
