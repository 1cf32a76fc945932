"""Numba CPU kernels (serial below a size threshold, ``prange`` above it).

One module per op family (``batch_norm``, ``group_norm``, ...), found by
:func:`tinynorm.kernels.kernels_for`; ``jit`` compiles, ``host`` checks arguments and
splits the work, ``loops`` holds the walks and leaves the families share. A kernel's
docstrings give its layout, traversal and numerics; the math is in the op's module
(``tinynorm/ops/<family>.py``) and in docs/norms.md.

The norm kernels read their input as a 2-D view and name their traversals (how the work
is split between threads) with three words, each meaning one thing in every module:

* rows: each thread takes a run of whole rows of the view and its inner loops run along
  a row. The statistic is per row (GroupNorm, FRN, RMSNorm), or per column, kept as column
  accumulators over the thread's rows and folded at the end (BatchNorm's short planes).
* cols: the rows are cut into column pieces and each work item takes one piece across all
  rows; a row's statistic is merged from its pieces (GroupNorm with few long rows).
* planes: the flat array is cut into one equal run per thread, the cuts falling anywhere,
  and a run is walked one contiguous (n, c) plane, or piece of a plane, at a time
  (BatchNorm and WeightNorm with long planes; :func:`.loops.walk_planes`). WeightNorm's
  "columns" walk its runs the same way by rows of D*B columns, one coefficient per column
  (:func:`.loops.walk_periods`).

Parallel kernels use Numba's own thread pool; tinynorm keeps OpenBLAS's pool
idle for the small GEMMs of a training step (see :mod:`tinynorm.blas`), since
two pools spinning against each other on a small machine cost more than
either saves.
"""
