"""The experiments of ``tinynorm study``, in the order they run and report.

Each module has ``NAME``, ``CLAIM``, ``plan(scale)`` (the records it will
write, each with the run that makes it), and, computed from records alone,
``verdicts(records, scale)``, ``table(records, scale)`` and ``plot(records, fig)``.
"""
from . import batch_size, lr, non_iid, placement, rnn, sync, train_eval

EXPERIMENTS = {m.NAME: m for m in (batch_size, sync, non_iid, rnn, lr, placement, train_eval)}

__all__ = ["EXPERIMENTS"]
