"""Teaches: writing your own autograd Function and checking it with check_op and hypothesis.

The op is a "soft clip", y = c * tanh(x / c), with its backward written by
hand: dy/dx = 1 - tanh(x / c)^2. check_op draws inputs with hypothesis
(including hard ones: huge and tiny scales, NaN and Inf), compares the
forward with a float64 NumPy oracle, the backward with finite differences,
and float32 with float64. Then a deliberately wrong backward shows what a
failure report looks like: the smallest failing case and its worst element.

    python examples/custom_op.py [--quick]
"""
import argparse

import numpy as np
from hypothesis import strategies as st

from tinynorm.autograd import Function
from tinynorm.backend import get_array_module
from tinynorm.testing import CheckFailure, check_op, hard_arrays, shapes


class SoftClip(Function):
    def forward(self, x, *, c):
        xp = get_array_module(x)
        t = xp.tanh(x / c)
        self.save_for_backward(t)
        return c * t

    def backward(self, grad):
        (t,) = self.saved
        return grad * (1 - t * t)


class WrongSoftClip(SoftClip):
    def backward(self, grad):
        (t,) = self.saved
        return grad * (1 - t)          # the bug: t instead of t * t


def soft_clip(x, c=2.0):
    return SoftClip.apply(x, c=c)


def oracle(x, c=2.0):
    return c * np.tanh(x / c)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer hypothesis cases")
    args = p.parse_args(argv)
    n = 10 if args.quick else 100
    inputs = st.tuples(hard_arrays(shapes(1, 3), axes=None, nonfinite=True))
    report = check_op(soft_clip, oracle, inputs, max_examples=n)
    print(f"SoftClip passes check_op on {report.cases} cases "
          f"({report.nonfinite_cases} with NaN or Inf):")
    print(report)
    try:
        check_op(lambda x: WrongSoftClip.apply(x, c=2.0), oracle, inputs, max_examples=n)
    except CheckFailure as failure:
        print("\nWrongSoftClip is caught:")
        print(str(failure).splitlines()[0])
        print(str(failure).splitlines()[2])
        return report, failure
    raise SystemExit("the wrong backward was not caught")


if __name__ == "__main__":
    main()
