"""The references an op's test files (tests/test_<op>*.py) share, one module per op.

Each module holds what the op's tests compare against, written from docs/norms.md: a naive
float64 oracle with explicit loops (SyncBatchNorm's reference is plain BatchNorm on the whole
batch), and the helpers the op's test layers share (tolerances, input draws, the call of a
kernel module given as an argument). An oracle never calls the code it checks.
"""
