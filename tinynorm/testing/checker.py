"""``check_op``: an op against its float64 oracle, finite differences, float32 and CUDA, in one call.

For each case hypothesis draws, with ``x`` the drawn arrays rounded to the
lowest dtype checked (so that every dtype and the oracle see the same values)::

    forward    fn(x) in every (dtype, device)  ~  oracle(x) in float64
    gradient   VJP <u, fn(x)> in float64 on the CPU  ~  central differences
               (x_i +- h e_j) / 2h, h = fd_eps * std(x_i), for every input in ``wrt``
    dtypes     the VJP in every other (dtype, device)  ~  the float64 CPU VJP
    devices    fn and its VJP on 'cuda'  ~  the same dtype on the CPU

Errors are normwise: ``max_j |got_j - expected_j| / max(max_j |expected_j|, sqrt(eps))``,
passing when at most the dtype's tolerance. VJPs of other dtypes and devices are
measured against the whole gradient (every input's, and the typical Jacobian
entry ``max|u| max|y| / max|x|``): float32 loses digits where one input's exact
gradient cancels to far below the others' (LayerNorm of one element: dx = 0). Where the expected value is NaN
or +-Inf the op's must be non-finite too, and finite where it is finite.
"""
import time

import numpy as np

from ..autograd import no_grad
from ..backend import to_numpy
from ..tensor import Tensor
from . import arguments as args_
from .gradcheck import central_differences

__all__ = ["check_op", "CheckFailure", "CheckReport", "TOLERANCES", "default_devices"]

TOLERANCES = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
FD_TOLERANCE = 1e-6


def default_devices():
    """``('cpu',)``, plus ``'cuda'`` when a real GPU is usable (never under the CUDA simulator)."""
    from .. import gpu
    return ("cpu", "cuda") if gpu.is_available() else ("cpu",)


class CheckFailure(AssertionError):
    """One check of :func:`check_op` failed; the attributes locate the worst element."""

    def __init__(self, check, dtype, device, which, shape, index, got, expected, error, tol,
                 case):
        self.check, self.dtype, self.device, self.which = check, dtype, device, which
        self.shape, self.index, self.got, self.expected = shape, index, got, expected
        self.error, self.tol, self.case = error, tol, case
        where = "output" if which is None else f"gradient of input {which}"
        super().__init__(
            f"check_op: {check} failed for the {where} in {np.dtype(dtype).name} on {device} "
            f"(the smallest failing case hypothesis found)\n"
            f"  inputs: {case}\n"
            f"  {where}: shape {shape}, worst element at index {index}: got {got!r}, "
            f"expected {expected!r} (error {error:.3g} > tolerance {tol:.3g})")


def _describe(args):
    parts = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            bad = int(np.size(a) - np.isfinite(a).sum())
            extra = f", {bad} non-finite" if bad else ""
            parts.append(f"#{i} shape {a.shape}{extra}")
        else:
            parts.append(f"#{i} {a!r}")
    return "; ".join(parts)


def _compare(got, expected, tol):
    """(error, index, got, expected) of the worst element; error is inf where finiteness differs."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    fin_e, fin_g = np.isfinite(expected), np.isfinite(got)
    if got.size == 0:
        return 0.0, (), None, None
    mismatch = fin_e != fin_g
    if mismatch.any():
        j = np.unravel_index(int(np.argmax(mismatch)), got.shape)
        return float("inf"), tuple(int(v) for v in j), got[j].item(), expected[j].item()
    diff = np.where(fin_e, np.abs(got - np.where(fin_e, expected, 0.0)), 0.0)
    scale = max(float(np.abs(np.where(fin_e, expected, 0.0)).max()), tol["floor"])
    j = np.unravel_index(int(np.argmax(diff)), got.shape)
    return float(diff[j] / scale), tuple(int(v) for v in j), got[j].item(), expected[j].item()


class CheckReport:
    """What :func:`check_op` measured: one row per (dtype, device) and the finite-difference row.

    Each row: dtype, device, cases, forward_error, grad_error and seconds
    spent in ``fn`` (and, for float64 on the CPU, in finite differences).
    grad_error is against the float64 CPU VJP, except for float64 on the CPU
    where it is against finite differences, scaled by ``fd_tol / tolerance``
    (the tolerance widened by the differences' own noise), so that ``fd_tol``
    is the pass mark there. ``str(report)`` is a table.
    """

    def __init__(self, keys):
        self.cases = 0
        self.nonfinite_cases = 0
        self.rows = {k: dict(dtype=np.dtype(k[0]).name, device=k[1], cases=0, forward_error=0.0,
                             grad_error=None, seconds=0.0) for k in keys}

    def _note(self, key, field, value):
        row = self.rows[key]
        row[field] = value if row[field] is None else max(row[field], value)

    def __str__(self):
        lines = [f"{'dtype':<8} {'device':<6} {'cases':>5} {'fwd err':>9} {'grad err':>9} {'time':>7}"]
        for r in self.rows.values():
            g = "-" if r["grad_error"] is None else f"{r['grad_error']:.2e}"
            lines.append(f"{r['dtype']:<8} {r['device']:<6} {r['cases']:>5} "
                         f"{r['forward_error']:>9.2e} {g:>9} {r['seconds']:>6.2f}s")
        return "\n".join(lines)


def _run(fn, args, dtype, device, wrt, cotangent):
    """fn's output (float64 host array) and, with a cotangent, the gradients of ``wrt``."""
    tensors, leaves = [], {}
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            t = Tensor(a.astype(dtype))
            if device != "cpu":
                t = t.to(device)
            if cotangent is not None and i in wrt:
                t.requires_grad_(True)
                leaves[i] = t
            tensors.append(t)
        else:
            tensors.append(a)
    out = args_.output(fn(*tensors), "check_op")
    grads = {}
    if cotangent is not None and leaves:
        if not out.requires_grad:
            raise TypeError("check_op: fn's output does not require grad although its inputs do; "
                            "was it computed outside the tape (no_grad, .numpy())?")
        u = Tensor(cotangent.astype(out.dtype))
        out.backward(u.to(device) if device != "cpu" else u)
        for i, t in leaves.items():
            g = t.grad
            grads[i] = np.zeros(args[i].shape) if g is None else to_numpy(g).astype(np.float64)
    return out, grads


def _natural_scale(cotangent, out, x):
    """``max|u| * max|y| / max|x|``: the size of a typical Jacobian entry times the cotangent.

    Low-precision VJPs lose digits where the exact gradient cancels to far
    below that size (RMSNorm of one large element: ``dx ~ eps / x^3``); their
    errors are measured against this size too.
    """
    mx = float(np.abs(x).max()) if x.size else 0.0
    if mx == 0.0 or not out.size:
        return 0.0
    return float(np.abs(cotangent).max()) * float(np.abs(out).max()) / mx


def _fd_step(x, fd_eps):
    finite = x[np.isfinite(x)]
    s = float(finite.std()) if finite.size > 1 else 0.0
    if s == 0.0:
        s = float(np.abs(finite).max()) if finite.size else 0.0
    return fd_eps * (s if s > 0 else 1.0)


def _numeric_grad(fn, args, i, cotangent, h):
    x = np.array(args[i], np.float64)

    def value():
        call = [Tensor(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                for a in args[:i] + (x,) + args[i + 1:]]
        return float(np.sum(to_numpy(fn(*call)).astype(np.float64) * cotangent))
    with no_grad():
        return central_differences(x, value, h)


def _fd_check(fn, args, i, cotangent, analytic, fd_eps, fd_tol, floor):
    """Compare ``analytic`` with central differences at steps h and h/2.

    The two estimates differ by their rounding and truncation errors, so
    ``2 max |n_h - n_h/2|``, plus the rounding of ``<u, fn(x)>`` over ``h``
    (``8 eps (sum |u y| + sum |g x|) / h``, g the analytic gradient: rounding
    ``x`` moves ``<u, fn(x)>`` by about ``eps sum |g x|``), widens the tolerance where finite differences
    themselves are imprecise (tiny gradients, large offsets); a wrong backward
    is off by the gradient's own size and still fails.
    """
    h = _fd_step(np.asarray(args[i]), fd_eps)
    n1 = _numeric_grad(fn, args, i, cotangent, h)
    n2 = _numeric_grad(fn, args, i, cotangent, h / 2)
    found = _compare(analytic, n2, dict(floor=floor))
    scale = max(float(np.abs(n2).max()) if n2.size else 0.0, floor)
    with no_grad():
        call = [Tensor(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
        out = to_numpy(fn(*call)).astype(np.float64)
    spread = float(np.sum(np.abs(out * cotangent))) + float(np.sum(np.abs(analytic * args[i])))
    rounding = 8 * np.finfo(np.float64).eps * spread / h
    noise = (2 * float(np.abs(n1 - n2).max()) + rounding) / scale if n2.size else 0.0
    return found, fd_tol + noise


def check_op(fn, oracle, inputs, *, dtypes=(np.float32, np.float64), devices=None, wrt=None,
             max_examples=20, tol=None, fd_tol=FD_TOLERANCE, fd_eps=1e-6, seed=None):
    """Check ``fn`` against ``oracle`` on hypothesis-drawn ``inputs``; return a :class:`CheckReport`.

    ``fn(*args)`` is the op under test, called with every float array of the
    case turned into a Tensor (of each dtype in ``dtypes``, on each device in
    ``devices``) and every other value passed as is; it returns one Tensor.
    ``oracle(*args)`` gets the float64 arrays and returns the expected output.
    ``inputs`` is a hypothesis strategy drawing the case: a tuple of
    positional arguments (or one array), or a tuple of strategies, one per
    argument. ``wrt`` lists the argument positions whose gradients are checked
    (default: every float array). ``devices`` defaults to
    :func:`default_devices`. ``tol`` maps dtype to tolerance (default
    :data:`TOLERANCES`); ``fd_tol`` is the finite-difference tolerance.
    ``seed`` fixes hypothesis's draws. Cases with NaN or Inf only check that
    the forward propagates them as the oracle does.

    Raises :class:`CheckFailure` (an AssertionError) for the smallest failing
    case hypothesis finds, naming the check, dtype, device, the array's shape
    and its worst element (index, got, expected). Do not call it inside a
    ``@given`` test; it runs hypothesis itself. Example::

        from hypothesis import strategies as st
        from tinynorm.testing import check_op, normal_arrays, shapes

        def softplus(x):                     # the op: tape ops only
            return (x.exp() + 1.0).log()

        check_op(softplus, lambda x: np.log1p(np.exp(x)),
                 inputs=st.tuples(normal_arrays(shapes(1, 3))))
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    who = "check_op"
    args_.function(fn, who)
    args_.function(oracle, who, "oracle")
    strategy = args_.strategy(inputs, who)
    dtypes = args_.float_dtypes(dtypes, who)
    devices = default_devices() if devices is None else args_.devices(devices, who)
    args_.indices(wrt, None, who)
    args_.count(max_examples, "max_examples", who)
    args_.positive(fd_eps, "fd_eps", who)
    args_.tolerances(who, fd_tol=fd_tol)
    if not isinstance(tol, (dict, type(None))):
        raise TypeError(f"{who}: tol must be a dict of dtype to tolerance, got {tol!r}")
    tols = dict(TOLERANCES)
    tols.update({args_.float_dtypes((k,), who)[0]: args_.positive(v, "tol", who, zero=True)
                 for k, v in (tol or {}).items()})
    lowest = min(dtypes, key=lambda d: d.itemsize)
    keys = [(d, dev) for dev in devices for d in dtypes]
    report = CheckReport(keys)
    ref_key = (np.dtype(np.float64), "cpu")

    def limits(dtype):
        return dict(floor=float(np.sqrt(np.finfo(dtype).eps)))

    def fail(check, dtype, device, which, shape, found, limit, case):
        err, j, g, e = found
        raise CheckFailure(check, dtype, device, which, shape, j, g, e, err, limit, case)

    def one_case(case):
        args = case if isinstance(case, tuple) else (case,)
        args = tuple(np.asarray(a, lowest).astype(np.float64)
                     if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
        desc = _describe(args)
        floats = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
        targets = args_.targets(wrt, args, floats, who)
        finite = all(np.isfinite(args[i]).all() for i in floats)
        report.cases += 1
        report.nonfinite_cases += not finite
        expected = np.asarray(oracle(*args), np.float64)
        cot = np.random.default_rng(0).standard_normal(expected.shape) if finite and targets else None
        results = {}
        for key in keys + ([ref_key] if cot is not None and ref_key not in keys else []):
            dtype, device = key
            start = time.perf_counter()
            out, grads = _run(fn, args, dtype, device, targets, cot)
            got = to_numpy(out)
            if key in report.rows:
                report.rows[key]["seconds"] += time.perf_counter() - start
                report.rows[key]["cases"] += 1
            if tuple(got.shape) != expected.shape:
                raise CheckFailure("forward shape", dtype, device, None, tuple(got.shape), (),
                                   tuple(got.shape), expected.shape, float("inf"), 0.0, desc)
            if got.dtype != dtype:
                raise CheckFailure("output dtype", dtype, device, None, got.shape, (),
                                   got.dtype.name, dtype.name, float("inf"), 0.0, desc)
            found = _compare(got, expected, limits(dtype))
            if key in report.rows:
                report._note(key, "forward_error", found[0] if np.isfinite(found[0]) else 0.0)
            if not found[0] <= tols[dtype]:
                fail("forward against the oracle", dtype, device, None, expected.shape, found,
                     tols[dtype], desc)
            results[key] = (got, grads)
        if cot is None:
            return
        start = time.perf_counter()
        ref = results[ref_key][1]
        for i in targets:
            found, limit = _fd_check(fn, args, i, cot, ref[i], fd_eps, fd_tol,
                                     limits(np.float64)["floor"])
            if ref_key in report.rows:
                report._note(ref_key, "grad_error", found[0] * fd_tol / limit)
            if not found[0] <= limit:
                fail("gradient against finite differences", np.float64, "cpu", i, args[i].shape,
                     found, limit, desc)
        if ref_key in report.rows:
            report.rows[ref_key]["seconds"] += time.perf_counter() - start
        for key in keys:
            if key == ref_key:
                continue
            dtype, device = key
            base_key = (dtype, "cpu") if device != "cpu" and (dtype, "cpu") in results else ref_key
            what = "against the CPU" if base_key[1] == "cpu" and device != "cpu" else \
                "against float64"
            if device != "cpu":
                found = _compare(results[key][0], results[base_key][0], limits(dtype))
                if not found[0] <= tols[dtype]:
                    fail(f"forward {what}", dtype, device, None, expected.shape, found,
                         tols[dtype], desc)
            whole = max([float(np.abs(g).max()) for g in results[base_key][1].values() if g.size]
                        or [0.0])
            for i in targets:
                floor = max(limits(dtype)["floor"], _natural_scale(cot, expected, args[i]), whole)
                found = _compare(results[key][1][i], results[base_key][1][i], dict(floor=floor))
                report._note(key, "grad_error", found[0])
                if not found[0] <= tols[dtype]:
                    fail(f"gradient {what}", dtype, device, i, args[i].shape, found, tols[dtype],
                         desc)

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(strategy)
    def run(case):
        with np.errstate(all="ignore"):
            one_case(case)

    if seed is not None:
        run = hseed(seed)(run)
    run()
    return report
