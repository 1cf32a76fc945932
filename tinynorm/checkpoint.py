"""Training checkpoints: everything a run needs to continue bitwise as if never stopped.

One file (``.npz``, or ``.safetensors``; written atomically by
:mod:`tinynorm.serialization`) holds

* ``model/<key>``: the model's ``state_dict`` under PyTorch's key names;
* ``extra/<module>/<key>``: state outside parameters and buffers
  (``Module.get_extra_state``: Cross-Iteration BN's window, CmBN's step);
* ``optimizer/<i>/<key>``: each parameter's optimizer arrays (Adam's moments,
  SGD's momentum buffer);
* ``meta``: JSON (as uint8) with the epoch just finished, the run's settings,
  the loss/accuracy history, the optimizer's scalar state (Adam's step), the
  global generator's state (initializers, dropout) and the data loader's
  generator state (the order of the next epochs).

``tinynorm train --save PATH`` writes one after every epoch; ``--resume PATH``
continues from it. :func:`load` reads one back; ``load(path).model_state`` is
a plain ``state_dict`` for ``Module.load_state_dict``.
"""
import json

import numpy as np

from . import random, serialization

FORMAT = 1


class Checkpoint:
    """A checkpoint read by :func:`load`: ``model_state``, ``extra_state``, ``optimizer_state``, ``meta``."""

    def __init__(self, model_state, extra_state, optimizer_state, meta, path):
        self.model_state, self.extra_state = model_state, extra_state
        self.optimizer_state, self.meta, self.path = optimizer_state, meta, path

    @property
    def epoch(self):
        return self.meta["epoch"]

    def check_settings(self, settings):
        """Raise ValueError naming every setting in which this run differs from the checkpoint's."""
        saved = self.meta["settings"]
        differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {v!r} now"
                  for k, v in settings.items() if saved.get(k) != v]
        if differ:
            raise ValueError(f"--resume {self.path}: the checkpoint was written by a different run ("
                             + "; ".join(differ) + "); resume with the same settings")

    def restore(self, model, optimizer, loader):
        """Put the model, optimizer, generators and loader back where the checkpoint left them.

        A checkpoint that does not fit ``model`` or ``optimizer`` (missing or extra keys, other
        shapes, another optimizer's state) raises ValueError naming the file; :func:`load`
        has already checked everything else."""
        modules = dict(model.named_modules())
        for name in self.extra_state:
            if name not in modules:
                raise ValueError(f"--resume {self.path}: extra state for a module {name!r} the "
                                 "model does not have")
        for what, call in (("model state", lambda: model.load_state_dict(self.model_state)),
                           ("extra state", lambda: [modules[name].set_extra_state(state)
                                                    for name, state in self.extra_state.items()]),
                           ("optimizer state", lambda: optimizer.load_state_dict(self.optimizer_state))):
            try:
                call()
            except (ValueError, TypeError, RuntimeError) as e:
                raise ValueError(f"--resume {self.path}: the checkpoint's {what} does not fit "
                                 f"this run: {e}") from None
        random.default_generator().bit_generator.state = self.meta["global_rng"]
        loader.set_rng_state(self.meta["loader_rng"])


def _encode(meta):
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def save(path, model, optimizer, loader, epoch, settings, history):
    """Write a checkpoint after ``epoch`` (1-based count of finished epochs) to ``path``."""
    for obj, what, method in ((model, "model", "state_dict"), (optimizer, "optimizer", "state_dict"),
                              (loader, "loader", "rng_state")):
        if not callable(getattr(obj, method, None)):
            raise TypeError(f"checkpoint.save: {what} must have a .{method}() (a tinynorm "
                            f"{'Module' if what == 'model' else what.capitalize() if what == 'optimizer' else 'DataLoader'}), "
                            f"got {type(obj).__name__}")
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        for key, value in module.get_extra_state().items():
            arrays[f"extra/{name}/{key}"] = value
    scalars = {}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if np.ndim(value) == 0:
                scalars.setdefault(str(i), {})[key] = value.item() if hasattr(value, "item") else value
            else:
                arrays[f"optimizer/{i}/{key}"] = value
    meta = {"format": FORMAT, "epoch": int(epoch), "settings": settings, "history": history,
            "optimizer_scalars": scalars,
            "global_rng": random.default_generator().bit_generator.state,
            "loader_rng": loader.rng_state()}
    arrays["meta"] = _encode(meta)
    serialization.save(arrays, path)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _rng_state(v):
    """Whether NumPy's generator takes ``v`` as its bit generator's state."""
    try:
        np.random.default_rng().bit_generator.state = v
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
    return True


# meta's fields: (name, check, what it must be). save() writes every one of them.
_FIELDS = (
    ("epoch", lambda v, m: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
     "an integer >= 0 (the epochs finished)"),
    ("settings", lambda v, m: isinstance(v, dict), "a JSON object (the run's settings)"),
    ("history", lambda v, m: isinstance(v, list) and len(v) == m["epoch"] and all(
        isinstance(h, list) and len(h) == 2 and all(map(_number, h)) for h in v),
     "a list of one [loss, accuracy] pair per finished epoch"),
    ("optimizer_scalars", lambda v, m: isinstance(v, dict) and all(
        k.isdigit() and isinstance(s, dict) and all(map(_number, s.values())) for k, s in v.items()),
     "a JSON object of parameter index -> {name: number}"),
    ("global_rng", lambda v, m: _rng_state(v), "a NumPy generator state"),
    ("loader_rng", lambda v, m: _rng_state(v), "a NumPy generator state"),
)


def _check_meta(meta, path):
    """The one schema check of a checkpoint's metadata: ValueError naming the file and field."""
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: corrupt checkpoint metadata: a {type(meta).__name__}, not a "
                         "JSON object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')!r}, this tinynorm reads "
                         f"format {FORMAT}")
    for name, ok, what in _FIELDS:
        if name not in meta:
            raise ValueError(f"{path}: corrupt checkpoint metadata: no field {name!r}")
        if not ok(meta[name], meta):
            value = repr(meta[name])
            raise ValueError(f"{path}: corrupt checkpoint metadata: field {name!r} must be {what}, "
                             f"got {value if len(value) <= 60 else value[:57] + '...'}")


def load(path):
    """Read a checkpoint written by :func:`save`; ValueError naming the path if it is not one."""
    arrays = serialization.load(path)
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a tinynorm training checkpoint (no 'meta' entry); a plain "
                         "state_dict file loads with tinynorm.serialization.load")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt checkpoint metadata ({e})") from None
    _check_meta(meta, path)
    model, extra, optim_state = {}, {}, {}
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        if kind == "model":
            model[rest] = value
        elif kind == "extra":
            name, _, sub = rest.rpartition("/")
            extra.setdefault(name, {})[sub] = value
        elif kind == "optimizer":
            i, _, sub = rest.partition("/")
            if not (i.isdigit() and sub):
                raise ValueError(f"{path}: checkpoint entry {key!r} is not optimizer/<index>/<name>")
            optim_state.setdefault(i, {})[sub] = value
        else:
            raise ValueError(f"{path}: unexpected checkpoint entry {key!r}")
    for i, scalars in meta["optimizer_scalars"].items():
        optim_state.setdefault(i, {}).update(scalars)
    return Checkpoint(model, extra, {"state": optim_state}, meta, path)


__all__ = ["Checkpoint", "save", "load", "FORMAT"]
