"""The device layer as seen without a GPU: clear errors, and the fast launch's argument layout.

These run everywhere (CI has no GPU); tests/test_gpu.py runs the GPU itself.
"""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn
from tinynorm.cli import main
from tinynorm.kernels.cuda import launch


def test_no_gpu_means_clear_errors(capsys):
    assert tn.cuda.is_available() is False  # the simulator is on in tests (conftest)
    with pytest.raises(RuntimeError, match="needs CuPy and an NVIDIA GPU"):
        tn.zeros(2, 3).to("cuda")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        nn.Linear(2, 2).cuda()
    with pytest.raises(ValueError, match="unknown device"):
        tn.zeros(2).to("tpu")
    assert main(["train", "--device", "cuda", "--epochs", "1"]) == 2
    assert "needs CuPy and an NVIDIA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("argv,why", [
    (["--norm", "cbn"], "merges statistics on the host"),
    (["--model", "lstm", "--norm", "bn"], "CPU only"),
    (["--workers", "2"], "one GPU"),
])
def test_cli_refuses_what_the_gpu_does_not_run(argv, why, capsys):
    assert main(["train", "--device", "cuda", "--epochs", "1", "--model", "cnn"] + argv) == 2
    assert why in capsys.readouterr().err


def test_cpu_tensors_stay_where_they_are():
    t = tn.tensor([1.0, 2.0], requires_grad=True)
    assert t.to("cpu") is t and t.cpu() is t and t.device == "cpu"
    m = nn.Linear(3, 2)
    assert m.to("cpu") is m


class _FakeDeviceArray:
    """Just the attributes the fast launch reads from a CuPy array."""

    class _Ptr:
        ptr = 0xDEAD0000

    class _Flags:
        c_contiguous = True

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self.itemsize = self.dtype.itemsize
        self.size = int(np.prod(shape))
        self.strides = tuple(int(s) for s in np.empty(shape, dtype).strides)
        self.data = self._Ptr()
        self.flags = self._Flags()


def test_fast_launch_lays_out_arguments_as_numba_kernels_take_them():
    """Array of ndim k -> meminfo, parent, nitems, itemsize, data, shape[k], strides[k];
    scalars keep their Numba type (int -> int64, float -> float64)."""
    a = _FakeDeviceArray((3, 5), np.float32)
    args = (a, 7, 2.5, np.float32(1.5))
    sig = launch._signature(args, _FakeDeviceArray)
    assert sig == (("f", 2, "C"), int, float, np.float32)
    types = launch._numba_types(sig)
    assert str(types[0]) == "array(float32, 2d, C)" and str(types[1]) == "int64"
    assert str(types[2]) == "float64" and str(types[3]) == "float32"
    packed = launch._pack(args, _FakeDeviceArray)
    assert [type(v) for v in packed[:5]] == [np.intp, np.intp, np.int64, np.int64, np.uint64]
    assert [int(v) for v in packed[:9]] == [0, 0, 15, 4, 0xDEAD0000, 3, 5, 20, 4]
    assert packed[9] == 7 and isinstance(packed[9], np.int64)
    assert packed[10] == 2.5 and isinstance(packed[10], np.float64)
    assert packed[11] == np.float32(1.5) and isinstance(packed[11], np.float32)
    assert launch._signature((a, True), _FakeDeviceArray) is None  # bools take Numba's own launch
