"""Shared test helpers: backends, tensors from NumPy arrays, counted gradient checks."""
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.backend import backend_by_name

# Every op test is parameterized over these; "cupy" runs only where a GPU is.
BACKENDS = ["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)]

GRADCHECKS = {"calls": 0, "inputs": 0}


def tensor(array, backend="numpy", requires_grad=False):
    """A Tensor on ``backend`` holding a copy of the NumPy ``array`` (dtype kept)."""
    array = np.asarray(array)
    return mg.Tensor(backend_by_name(backend).from_numpy(array.copy()), requires_grad=requires_grad)


def check_grad(fn, inputs, **kwargs):
    """``mg.gradcheck`` that counts itself, for the suite's closing summary."""
    GRADCHECKS["calls"] += 1
    GRADCHECKS["inputs"] += sum(1 for x in inputs if isinstance(x, mg.Tensor) and x.requires_grad)
    assert mg.gradcheck(fn, inputs, **kwargs) is True


def assert_close(actual, expected, rtol=1e-6, atol=1e-8):
    """Compare a Tensor or backend array with a NumPy array (or number)."""
    if isinstance(actual, mg.Tensor):
        actual = actual.numpy()
    elif not isinstance(actual, (np.ndarray, np.generic, float, int)):
        actual = mg.backend.to_numpy(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def interrupt_at_step(patch, train, step):
    """Make ``train.py`` (the module) raise KeyboardInterrupt, as Ctrl-C would, as training
    step ``step`` begins (``patch``: pytest's monkeypatch)."""
    real = train.step_seed

    def interrupting(seed, at, rank=0):
        if at == step:
            raise KeyboardInterrupt
        return real(seed, at, rank)
    patch.setattr(train, "step_seed", interrupting)


def assert_same_weights_and_optimizer(a, b):
    """Two ``load_checkpoint`` results hold the same weights and optimizer states, bit for bit."""
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)
    for index, entries in a[1]["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(value, b[1]["state"][index][key], err_msg=f"optimizer {index}.{key}")


# -- hypothesis strategies ----------------------------------------------------

def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes, small enough for element-by-element gradient checks."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_pairs(min_side=1, max_side=3):
    """Two shapes that broadcast together, size-1 and missing axes included."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                             min_side=min_side, max_side=max_side)


def arrays(shape, low=-2.0, high=2.0):
    """float64 arrays of ``shape`` with values in [low, high] (a seeded draw)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, width=64))
