"""The backend switch: choosing NumPy or CuPy, clear errors, no implicit copies,
seeded generators, and the strict test backend that stands in for CuPy on the CPU."""
import platform
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
import minigrad.backend as backend
from helpers import tensor
from strict_backend import StrictArray, StrictArrayError


# -- choosing a backend -------------------------------------------------------

def test_numpy_is_the_default_backend():
    assert mg.get_backend() == "numpy"
    assert isinstance(mg.Tensor([1.0]).data, np.ndarray)


def test_set_backend_changes_where_new_tensors_live():
    mg.set_backend("strict")
    try:
        assert mg.get_backend() == "strict"
        assert isinstance(mg.Tensor([1.0]).data, StrictArray)
    finally:
        mg.set_backend("numpy")
    assert isinstance(mg.Tensor([1.0]).data, np.ndarray)


def test_use_backend_restores_the_previous_backend_even_after_an_error():
    with pytest.raises(KeyError):
        with mg.use_backend("strict"):
            assert isinstance(mg.zeros((2,)).data, StrictArray)
            raise KeyError("boom")
    assert mg.get_backend() == "numpy"


def test_unknown_backend_names_the_choices():
    with pytest.raises(mg.BackendError, match=r"unknown backend 'jax'.*'numpy'"):
        mg.set_backend("jax")


# -- asking for CuPy where it cannot run ----------------------------------------

@pytest.fixture
def fresh_cupy(monkeypatch):
    """Forget any loaded CuPy backend so the loader runs again."""
    monkeypatch.setattr(backend, "_loaded", {k: v for k, v in backend._loaded.items() if k != "cupy"})


def test_missing_cupy_says_not_installed_and_how_to_install(fresh_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)          # makes `import cupy` fail
    with pytest.raises(mg.BackendError, match=r"CuPy is not installed.*pip install"):
        mg.set_backend("cupy")
    assert mg.get_backend() == "numpy"


def _fake_cupy(get_device_count):
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_cupy_without_a_gpu_says_no_gpu_is_visible(fresh_cupy, monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(no_driver))
    with pytest.raises(mg.BackendError, match=r"installed but no CUDA GPU is visible.*no CUDA-capable"):
        mg.set_backend("cupy")


def test_cupy_with_zero_devices_says_no_gpu_is_visible(fresh_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    with pytest.raises(mg.BackendError, match=r"no CUDA GPU is visible \(0 devices\)"):
        mg.set_backend("cupy")


def _cupy_runs():
    try:
        backend.backend_by_name("cupy")
        return True
    except mg.BackendError:
        return False


@pytest.mark.skipif(_cupy_runs(), reason="this machine can run CuPy")
def test_set_backend_cupy_prints_one_clear_error_not_a_cupy_traceback():
    run = subprocess.run([sys.executable, "-c", "import minigrad as mg; mg.set_backend('cupy')"],
                         capture_output=True, text=True)
    assert run.returncode == 1
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith("minigrad.backend.BackendError: backend 'cupy' is not available")
    assert "During handling of the above exception" not in run.stderr
    assert "site-packages/cupy" not in run.stderr


def test_importing_minigrad_does_not_import_cupy():
    run = subprocess.run([sys.executable, "-c", "import sys, minigrad; print('cupy' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


# -- moving between backends: explicit, never implicit ---------------------------

def test_to_moves_a_tensor_and_numpy_copies_it_back():
    x = tensor(np.arange(6.0).reshape(2, 3), "numpy")
    y = x.to("strict")
    assert isinstance(y.data, StrictArray) and y.backend == "strict"
    np.testing.assert_array_equal(y.numpy(), np.arange(6.0).reshape(2, 3))
    assert y.dtype == np.float64


def test_numpy_returns_a_copy_from_any_backend():
    x = tensor(np.ones(3), "strict")
    copy = x.numpy()
    copy[0] = 5.0
    assert isinstance(copy, np.ndarray)
    np.testing.assert_array_equal(x.numpy(), np.ones(3))


def test_gradient_flows_back_through_to():
    x = tensor(np.array([1.0, 2.0]), "numpy", requires_grad=True)
    y = (x.to("strict") * 3.0).to("numpy")
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 30.0])
    assert isinstance(x.grad, np.ndarray)


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b,
    lambda a, b: mg.concatenate([a, b]), lambda a, b: mg.where(a.data > 0, a, b),
])
def test_an_op_on_two_backends_raises_naming_both(op):
    a, b = tensor(np.ones(2), "numpy"), tensor(np.ones(2), "strict")
    with pytest.raises(mg.BackendError, match=r"numpy and strict"):
        op(a, b)


def test_a_numpy_array_next_to_a_strict_tensor_is_refused_not_copied():
    with pytest.raises(mg.BackendError, match=r"numpy and strict"):
        tensor(np.ones(2), "strict") + np.ones(2)


# -- seeded random generators, one per backend -----------------------------------

@pytest.mark.parametrize("name", ["numpy", "strict"])
def test_manual_seed_makes_draws_repeatable(name):
    with mg.use_backend(name):
        mg.manual_seed(123)
        first = mg.randn(3, 4).numpy()
        mg.manual_seed(123)
        again = mg.randn(3, 4).numpy()
        mg.manual_seed(124)
        other = mg.randn(3, 4).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32


def test_each_backend_has_its_own_generator():
    mg.manual_seed(7)
    with mg.use_backend("strict"):
        strict_first = mg.rand(5).numpy()
    numpy_first = mg.rand(5).numpy()
    mg.manual_seed(7)
    numpy_again = mg.rand(5).numpy()          # not advanced by the strict draw
    np.testing.assert_array_equal(numpy_first, numpy_again)
    np.testing.assert_array_equal(strict_first, numpy_first)


# -- the strict backend really refuses what CuPy refuses --------------------------

def test_strict_arrays_refuse_implicit_conversion_to_numpy():
    a = tensor(np.ones(3), "strict").data
    with pytest.raises(StrictArrayError, match="implicit conversion"):
        np.asarray(a)


def test_strict_arrays_refuse_numpy_functions_and_plain_arrays():
    a = tensor(np.ones(3), "strict").data
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(StrictArrayError, match="numpy.sum was called"):
        np.sum(a)
    with pytest.raises(StrictArrayError, match="plain numpy.ndarray was mixed"):
        a + np.ones(3)


class _CupyUnsafeExp(mg.Function):
    """An op written wrongly: NumPy by name instead of the input's array module."""

    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return gy


def test_strict_backend_catches_an_op_that_would_break_on_cupy():
    _CupyUnsafeExp()(tensor(np.ones(2), "numpy"))                    # fine on NumPy
    with pytest.raises(TypeError):
        _CupyUnsafeExp()(tensor(np.ones(2), "strict"))               # caught on the CPU


def test_creation_functions_follow_numpy():
    assert mg.zeros(2, 3).shape == mg.zeros((2, 3)).shape == (2, 3)
    assert mg.arange(4).dtype == np.int64
    np.testing.assert_array_equal(mg.arange(0, 1, 0.25).numpy(), [0.0, 0.25, 0.5, 0.75])


def test_strict_module_offers_only_functions_cupy_has():
    xp = mg.backend.backend_by_name("strict").xp
    assert isinstance(xp.exp(tensor(np.zeros(2), "strict").data), StrictArray)
    with pytest.raises(AttributeError, match="xp.nanpercentile is not in the list"):
        xp.nanpercentile


# -- the CPU allocator setting (minigrad/allocator.py) -------------------------------

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

PAGE_FAULTS_OF_A_LOOP = """
import resource, sys
import numpy as np
if sys.argv[1] == "reuse":
    from minigrad.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def one_round():    # what a training step does: make and free arrays of ~1 MB
    arrays = [np.ones(2**18, np.float32) for _ in range(3)] + [np.ones(2**17, np.float32) for _ in range(3)]
    del arrays
one_round()
before = faults()
for _ in range(10):
    one_round()
print((faults() - before) / 10)
"""


def test_reuse_freed_memory_says_whether_it_applied():
    from minigrad.allocator import reuse_freed_memory
    assert reuse_freed_memory() is ON_GLIBC
    assert reuse_freed_memory() is ON_GLIBC          # calling it again changes nothing


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_reuse_freed_memory_stops_the_page_faults_of_a_repeated_step():
    """Each round makes and frees 1.5 MB of arrays: fresh pages every round by default
    (~375 faults of 4 KB), reused ones after reuse_freed_memory()."""
    faults = {}
    for mode in ("default", "reuse"):
        run = subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_A_LOOP, mode], capture_output=True,
                             text=True, check=True)
        faults[mode] = float(run.stdout.split()[-1])
    assert faults["reuse"] < faults["default"] / 4, faults


# --- NumPy's scatter-add: the rows as flat elements, add.at's sums bit for bit -------

@settings(deadline=None)
@given(V=st.integers(1, 7), D=st.integers(1, 9), N=st.integers(0, 40),
       block=st.integers(1, 50), negative=st.booleans(), transposed=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**31 - 1))
def test_numpy_scatter_add_is_add_at_bit_for_bit(V, D, N, block, negative, transposed, dtype, seed):
    """Repeated rows, negative indices, values not contiguous, blocks of any size
    (a block smaller than a row included): the same array as numpy.add.at."""
    rng = np.random.default_rng(seed)
    index = rng.integers(-V if negative else 0, V, size=N)
    values = rng.standard_normal((D, N) if transposed else (N, D)).astype(dtype)
    values = values.T if transposed else values                      # (N, D)
    start = rng.standard_normal((V, D)).astype(dtype)
    expected, got = start.copy(), start.copy()
    np.add.at(expected, index, values)
    backend._numpy_scatter_add(got, index, values, block=block)
    np.testing.assert_array_equal(got, expected)


def test_numpy_scatter_add_takes_other_indices_as_add_at_does():
    """A tuple index, a 2-D index and an index out of range go to add.at itself."""
    a = np.zeros((3, 4))
    backend._numpy_scatter_add(a, (np.array([0, 0, 2]), np.array([1, 1, 3])), np.ones(3))
    np.testing.assert_array_equal(a[0, 1], 2.0)
    b = np.zeros((3, 2))
    backend._numpy_scatter_add(b, np.array([[0, 1], [0, 2]]), np.ones((2, 2, 2)))
    np.testing.assert_array_equal(b, [[2, 2], [1, 1], [1, 1]])
    with pytest.raises(IndexError):
        backend._numpy_scatter_add(np.zeros((3, 2)), np.array([0, 3]), np.ones((2, 2)))
    with pytest.raises(IndexError):
        backend._numpy_scatter_add(np.zeros((3, 2)), np.array([-4]), np.ones((1, 2)))


def test_the_numpy_backend_scatters_with_the_fast_path():
    assert backend.backend_by_name("numpy")._scatter_add is backend._numpy_scatter_add


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_numpy_scatter_add_of_narrow_indices_is_add_at(dtype):
    """An index of a narrow integer type (int8, int16: embedding accepts any integers):
    the flat element index v D + j exceeds its range and must not wrap around."""
    V, D = 120, 300                                  # V D = 36,000 > int16's 32,767
    index = np.array([0, 5, 119, 119, -1, 100], dtype=dtype)
    values = np.arange(6 * D, dtype=np.float64).reshape(6, D)
    expected, got = np.zeros((V, D)), np.zeros((V, D))
    np.add.at(expected, index, values)
    backend._numpy_scatter_add(got, index, values)
    np.testing.assert_array_equal(got, expected)
