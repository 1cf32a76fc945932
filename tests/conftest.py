import os

# Before anything imports numba: CUDA kernels run under the simulator unless
# the environment says otherwise (NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

