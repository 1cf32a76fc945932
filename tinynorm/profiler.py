"""A profiler named like ``torch.profiler``: where a training step's time goes.

::

    with tinynorm.profiler.profile() as prof:
        loss = model(x).sum(); loss.backward(); opt.step()
    print(prof.key_averages().table(sort_by="self_time_total", row_limit=20))
    prof.export_chrome_trace("trace.json")     # Perfetto or chrome://tracing

What is recorded, each as a nested range (self time = the range minus the
ranges inside it):

* every Function's forward (``BatchNorm``, ``Mul``, named by its class) and
  backward (``NativeBatchNormBackward0``, named as ``grad_fn.name()``);
* every kernel call through ``kernels_for`` (``kernel:batch_norm.bn_stats``) and every
  matrix product of ``tinynorm.blas`` (``kernel:blas.matmul``),
  with the bytes of the arrays it is handed (read or written), hence GB/s;
  a Function's bytes are those of the kernels inside it, where it calls any;
* ``Optimizer.step`` (``Optimizer.step#Adam.step``) and each batch drawn from a
  data loader (``enumerate(DataLoader)#DataLoader.__next__``);
* ranges of your own with ``record_function(name)``.

On the GPU each range waits for the device before it closes, so times are the
kernels' and not their launches'. With no profiler active, the tape's dispatch
and ``kernels_for`` each test one module global (``benchmarks/bench_profiler_overhead.py``
measures that cost).
"""
import contextlib
import functools
import json
import time

from .backend import is_device_array as _on_gpu

_active = None


def _now():
    return time.perf_counter_ns()


def _sync():
    import cupy
    cupy.cuda.Device().synchronize()


def _nbytes(args):
    total = 0
    for a in args:
        if hasattr(a, "nbytes") and hasattr(a, "shape") and getattr(a, "ndim", 0) > 0:
            total += int(a.nbytes)
    return total


class _KernelModule:
    """A stand-in for a kernel module: every function call is a range with its arrays' bytes."""

    def __init__(self, profiler, module, family):
        self._profiler, self._module, self._family = profiler, module, family

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if not callable(value) or name.startswith("_") or isinstance(value, type):
            return value
        prof, label = self._profiler, f"kernel:{self._family}.{name}"

        def timed(*args, **kwargs):
            gpu = any(_on_gpu(a) for a in args)
            prof._push(label, "kernel")
            try:
                return value(*args, **kwargs)
            finally:
                if gpu:
                    _sync()
                prof._pop(_nbytes(args) + _nbytes(kwargs.values()))
        return timed


class FunctionEventAvg:
    """One row of :meth:`profile.key_averages`: totals over every range with this name."""

    def __init__(self, key, category):
        self.key, self.category = key, category
        self.count = 0
        self.self_time_ns = 0
        self.time_ns = 0
        self.bytes = 0

    @property
    def self_time_total(self):
        return self.self_time_ns / 1e3

    @property
    def time_total(self):
        return self.time_ns / 1e3

    @property
    def gbps(self):
        return self.bytes / self.time_ns if self.bytes and self.time_ns else None

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self={self.self_time_total:.1f}us "
                f"total={self.time_total:.1f}us calls={self.count}>")


_SORT = {"self_time_total": "self_time_ns", "self_cpu_time_total": "self_time_ns",
         "time_total": "time_ns", "cpu_time_total": "time_ns", "calls": "count",
         "count": "count", "bytes": "bytes"}


def _fmt_time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.3f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f}ms"
    return f"{ns / 1e3:.3f}us"


def _fmt_bytes(n):
    if not n:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


class EventList(list):
    """The rows of :meth:`profile.key_averages`, printable with :meth:`table`."""

    def table(self, sort_by="self_time_total", row_limit=100):
        """A text table, ``sort_by`` one of self_time_total, time_total, calls, bytes
        (PyTorch's self_cpu_time_total, cpu_time_total and count are accepted)."""
        if sort_by not in _SORT:
            raise ValueError(f"table: sort_by must be one of {sorted(_SORT)}, got {sort_by!r}")
        rows = sorted(self, key=lambda e: getattr(e, _SORT[sort_by]), reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        total_self = sum(e.self_time_ns for e in self) or 1
        head = ("Name", "Self %", "Self time", "Total time", "Avg time", "Calls", "Bytes", "GB/s")
        body = []
        for e in rows:
            gbps = e.gbps
            body.append((e.key, f"{100 * e.self_time_ns / total_self:.2f}%",
                         _fmt_time(e.self_time_ns), _fmt_time(e.time_ns),
                         _fmt_time(e.time_ns / e.count), str(e.count), _fmt_bytes(e.bytes),
                         "-" if gbps is None else f"{gbps:.2f}"))
        widths = [max(len(r[k]) for r in body + [head]) for k in range(len(head))]
        rule = "  ".join("-" * w for w in widths)

        def line(r):
            return "  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                             for k, (c, w) in enumerate(zip(r, widths)))

        out = [rule, line(head), rule] + [line(r) for r in body] + [rule]
        out.append(f"Self time total: {_fmt_time(sum(e.self_time_ns for e in self))}")
        return "\n".join(out)


class profile:
    """Record every op, kernel, optimizer step and loader batch inside the ``with`` block."""

    def __init__(self):
        self.events = []
        self._stack = []
        self._kernels = {}
        self._prev = None
        self.started = self.stopped = None

    # ---- activation ------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        global _active
        from . import autograd, kernels
        if _active is not None:
            raise RuntimeError("a tinynorm profiler is already active; profiles do not nest")
        _active = self
        autograd._profiler = self
        kernels._profiler = self
        self.started = _now()

    def stop(self):
        global _active
        from . import autograd, kernels
        if _active is self:
            _active = None
            autograd._profiler = None
            kernels._profiler = None
        self.stopped = _now()

    # ---- ranges ----------------------------------------------------------
    def _push(self, name, category):
        self._stack.append([name, category, _now(), 0, 0])

    def _pop(self, nbytes=0):
        end = _now()
        name, category, start, child_ns, child_bytes = self._stack.pop()
        dur = end - start
        nbytes = nbytes or child_bytes
        self.events.append((name, category, start, dur, dur - child_ns, nbytes))
        if self._stack:
            self._stack[-1][3] += dur
            self._stack[-1][4] += nbytes

    @contextlib.contextmanager
    def _range(self, name, category):
        self._push(name, category)
        try:
            yield
        finally:
            self._pop()

    def forward(self, fn, arrays, params):
        """Run ``fn.forward`` as a range (called by ``Function.apply``)."""
        self._push(type(fn).__name__, "forward")
        out = None
        try:
            out = fn.forward(*arrays, **params)
            return out
        finally:
            if _on_gpu(out):
                _sync()
            self._pop()

    def backward(self, node, grad):
        """Run ``node.fn.backward`` as a range (called by the backward walk)."""
        from .tape import node_name
        self._push(node_name(node), "backward")
        try:
            return node.fn.backward(grad)
        finally:
            if _on_gpu(grad):
                _sync()
            self._pop()

    def call(self, label, fn, *args):
        """``fn(*args)`` as a kernel range; its bytes are those of the arrays in and out."""
        gpu = any(_on_gpu(a) for a in args)
        self._push(label, "kernel")
        out = None
        try:
            out = fn(*args)
            return out
        finally:
            if gpu:
                _sync()
            self._pop(_nbytes(args) + _nbytes((out,)))

    def kernels(self, module, family):
        proxy = self._kernels.get(module.__name__)
        if proxy is None:
            proxy = self._kernels[module.__name__] = _KernelModule(self, module, family)
        return proxy

    # ---- results ---------------------------------------------------------
    def key_averages(self):
        """One :class:`FunctionEventAvg` per range name, in order of first appearance."""
        rows = {}
        for name, category, _, dur, self_ns, nbytes in self.events:
            row = rows.get(name)
            if row is None:
                row = rows[name] = FunctionEventAvg(name, category)
            row.count += 1
            row.time_ns += dur
            row.self_time_ns += self_ns
            row.bytes += nbytes
        return EventList(rows.values())

    def export_chrome_trace(self, path):
        """Write the ranges as Chrome trace-event JSON (complete events, microseconds)."""
        origin = self.started or 0
        events = [{"name": name, "cat": category, "ph": "X", "pid": 0, "tid": 0,
                   "ts": (start - origin) / 1e3, "dur": dur / 1e3,
                   "args": {"bytes": nbytes} if nbytes else {}}
                  for name, category, start, dur, _, nbytes in self.events]
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


@contextlib.contextmanager
def record_function(name):
    """A range of your own inside an active profile (nothing when none is active)."""
    prof = _active
    if prof is None:
        yield
        return
    with prof._range(name, "user"):
        yield


def record_method(prefix, category):
    """Decorator: each call of the method is a range ``prefix#Class.method`` while profiling."""
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            prof = _active
            if prof is None:
                return method(self, *args, **kwargs)
            with prof._range(f"{prefix}#{type(self).__name__}.{method.__name__}", category):
                return method(self, *args, **kwargs)
        return wrapper
    return decorate


def _timed_batches(iterator, name):
    while True:
        prof = _active
        if prof is None:
            yield from iterator
            return
        prof._push(name, "dataloader")
        try:
            item = next(iterator)
        except StopIteration:
            prof._stack.pop()
            return
        except BaseException:
            prof._pop()
            raise
        prof._pop()
        yield item


def record_batches(iter_method):
    """Decorator for a loader's ``__iter__``: drawing each batch is a range while profiling."""
    @functools.wraps(iter_method)
    def wrapper(self):
        iterator = iter(iter_method(self))
        if _active is None:
            return iterator
        return _timed_batches(iterator, f"enumerate(DataLoader)#{type(self).__name__}.__next__")
    return wrapper


step = record_method("Optimizer.step", "optimizer")

__all__ = ["profile", "record_function", "record_method", "record_batches", "EventList",
           "FunctionEventAvg"]
