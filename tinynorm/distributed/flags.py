"""Arrival counters in shared memory, published and polled with full memory fences.

A rank copies its payload into shared memory and then *publishes* its
counter; a peer that *polls* the counter and sees it reached the exchange
number may then read the payload. The fences keep those two steps in order on
every CPU (x86 keeps stores in order anyway; ARM does not), and the fence in
the polling loop stops the compiler from hoisting the load out of the loop.
"""
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _fence(typingctx):
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


@njit(cache=True)
def publish(counters, index, value):
    """Store ``value`` at ``counters[index]`` after every earlier store is visible."""
    _fence()
    counters[index] = value


@njit(cache=True)
def first_behind(counters, stride, world, target, spins):
    """Spin up to ``spins`` rounds until every ``counters[r * stride] >= target``.

    Returns -1 when all ranks arrived (later loads then see their payloads),
    else the lowest rank still behind.
    """
    lag = 0
    for _ in range(spins):
        _fence()
        lag = -1
        for r in range(world):
            if counters[r * stride] < target:
                lag = r
                break
        if lag < 0:
            _fence()
            return -1
    return lag
