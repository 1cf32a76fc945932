"""Oracles shared by an op's test files (tests/test_<op>*.py), one module per op.

Each module holds the op's naive float64 oracle, written from docs/norms.md with explicit
loops, and the helpers the op's test layers share (tolerances, input draws, the call of a
kernel module given as an argument). Nothing here imports tinynorm: an oracle never calls
the kernels it checks.
"""
