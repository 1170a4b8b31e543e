"""Matrix multiplication (minigrad/ops/linalg.py) against numpy.matmul.

Covers 2-D @ 2-D, batched operands whose batch dimensions broadcast, 1-D operands
on either side (and both), the @ operator and mg.matmul, gradient checks of both
operands on every backend, float32 and float64 kept, size-0 inner and outer
dimensions, and the errors for misaligned, non-broadcastable and 0-d operands.
"""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, arrays, assert_close, check_grad, tensor

SHAPE_PAIRS = [
    ((3, 4), (4, 2)),              # 2-D @ 2-D
    ((1, 1), (1, 1)),
    ((2, 1, 3, 4), (5, 4, 2)),     # batch dims broadcast: (2, 1) with (5,)
    ((1, 3, 4), (2, 4, 2)),
    ((2, 3, 4), (1, 4, 2)),
    ((3, 1, 2, 2), (1, 2, 2, 3)),
    ((2, 3, 4), (4, 2)),           # batched @ 2-D and 2-D @ batched
    ((3, 4), (2, 4, 2)),
    ((4,), (4, 2)),                # 1-D @ 2-D
    ((3, 4), (4,)),                # 2-D @ 1-D
    ((4,), (4,)),                  # 1-D @ 1-D: a 0-d result
    ((1,), (1,)),
    ((4,), (2, 4, 3)),             # 1-D @ batched
    ((3,), (2, 1, 3, 2)),
    ((2, 3, 4), (4,)),             # batched @ 1-D
    ((2, 1, 3, 4), (4,)),
]

EMPTY_SHAPE_PAIRS = [
    ((2, 0), (0, 3)),              # empty inner dimension: a result of zeros
    ((0, 3), (3, 2)),              # empty outer dimensions
    ((2, 3), (3, 0)),
    ((0,), (0,)),
    ((0,), (0, 3)),
    ((2, 0), (0,)),
    ((2, 0, 3), (3, 4)),           # empty batch dimension
    ((2, 3, 0), (1, 0, 4)),
]


def _operands(shape_a, shape_b, backend, dtype=np.float64, seed=0):
    """Random NumPy operands and Tensor copies of them that require grad."""
    rng = np.random.default_rng(seed)
    a_np = rng.standard_normal(shape_a).astype(dtype)
    b_np = rng.standard_normal(shape_b).astype(dtype)
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    return a_np, b_np, a, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape_a, shape_b", SHAPE_PAIRS)
def test_matmul_matches_numpy_and_gradcheck(backend, shape_a, shape_b):
    a_np, b_np, a, b = _operands(shape_a, shape_b, backend)
    assert_close(mg.matmul(a, b), np.matmul(a_np, b_np), rtol=1e-12)
    assert_close(a @ b, np.matmul(a_np, b_np), rtol=1e-12)
    check_grad(mg.matmul, [a, b])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_matmul_with_shapes_from_hypothesis(backend, data):
    # numpy.matmul's signature "(n?,k),(k,m?)->(n?,m?)": 1-D operands and broadcast batch dims
    (shape_a, shape_b), result_shape = data.draw(hnp.mutually_broadcastable_shapes(
        signature=np.matmul.signature, max_dims=2, min_side=1, max_side=3))
    a_np, b_np = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    y = a @ b
    assert y.shape == result_shape
    assert_close(y, np.matmul(a_np, b_np), rtol=1e-12)
    check_grad(lambda a, b: a @ b, [a, b])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("grad_of", ["a", "b"])
def test_matmul_gradcheck_of_one_operand(backend, grad_of):
    a_np, b_np, a, b = _operands((2, 1, 3, 4), (5, 4, 2), backend)
    (b if grad_of == "a" else a).requires_grad = False
    check_grad(mg.matmul, [a, b])


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_gradient_by_hand(backend):
    # y = a @ b with a (2, 3), b (3,): dL/da = outer(gy, b), dL/db = a^T gy
    a_np, b_np = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 2.0])
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    gy = np.array([3.0, -2.0])
    (a @ b).backward(tensor(gy, backend))
    assert_close(a.grad, [[3.0, -3.0, 6.0], [-2.0, 2.0, -4.0]])
    assert_close(b.grad, [0.0 * 3 - 3.0 * 2, 1.0 * 3 - 4.0 * 2, 2.0 * 3 - 5.0 * 2])


def test_matmul_with_a_numpy_array_on_either_side():
    a_np, b_np = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    assert_close(mg.Tensor(a_np) @ b_np, a_np @ b_np)
    assert_close(a_np @ mg.Tensor(b_np), a_np @ b_np)
    assert_close(mg.matmul(a_np, mg.Tensor(b_np)), a_np @ b_np)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4, 2)), ((4,), (4,)), ((2, 3, 4), (4,))])
def test_matmul_keeps_the_dtype_forward_and_backward(backend, dtype, shape_a, shape_b):
    a_np, b_np, a, b = _operands(shape_a, shape_b, backend, dtype=dtype)
    y = a @ b
    assert y.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(y, np.matmul(a_np.astype(np.float64), b_np.astype(np.float64)), rtol=tol, atol=tol)
    y.backward(tensor(np.random.default_rng(1).standard_normal(y.shape).astype(dtype), backend))
    assert a.grad.dtype == dtype and b.grad.dtype == dtype
    assert a.grad.shape == shape_a and b.grad.shape == shape_b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape_a, shape_b", EMPTY_SHAPE_PAIRS)
def test_matmul_with_a_size_0_dimension(backend, shape_a, shape_b):
    a_np, b_np, a, b = _operands(shape_a, shape_b, backend)
    y = a @ b
    assert y.shape == np.matmul(a_np, b_np).shape
    assert_close(y, np.matmul(a_np, b_np))
    y.backward(tensor(np.random.default_rng(3).standard_normal(y.shape), backend))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    # y is empty or does not depend on the operands (an empty sum): every gradient is 0
    assert_close(a.grad, np.zeros(shape_a))
    assert_close(b.grad, np.zeros(shape_b))
    check_grad(mg.matmul, [a, b])


@pytest.mark.parametrize("shape_a, shape_b", [
    ((2, 3), (4, 5)),
    ((3,), (4,)),
    ((2, 3), (4,)),
    ((4,), (3, 2)),
    ((2, 2, 3), (2, 4, 5)),
])
def test_matmul_of_misaligned_shapes_names_both_shapes(shape_a, shape_b):
    a, b = mg.Tensor(np.zeros(shape_a)), mg.Tensor(np.zeros(shape_b))
    pattern = re.escape(str(shape_a)) + ".*" + re.escape(str(shape_b)) + ".*not aligned"
    with pytest.raises(ValueError, match=pattern):
        a @ b
    with pytest.raises(ValueError, match=pattern):
        mg.matmul(a, b)


@pytest.mark.parametrize("shape_a, shape_b", [
    ((2, 3, 4), (3, 4, 5)),
    ((2, 1, 3, 4), (3, 3, 4, 5)),
    ((3, 3, 4), (2, 2, 4, 5)),
])
def test_matmul_of_batch_dims_that_do_not_broadcast_raises(shape_a, shape_b):
    a, b = mg.Tensor(np.zeros(shape_a)), mg.Tensor(np.zeros(shape_b))
    pattern = "batch dimensions.*" + re.escape(str(shape_a)) + ".*" + re.escape(str(shape_b)) \
        + ".*do not broadcast"
    with pytest.raises(ValueError, match=pattern):
        a @ b


@pytest.mark.parametrize("shape_a, shape_b", [((), (3,)), ((3,), ()), ((), ()), ((), (2, 2))])
def test_matmul_of_a_0d_operand_raises(shape_a, shape_b):
    a, b = mg.Tensor(np.ones(shape_a)), mg.Tensor(np.ones(shape_b))
    pattern = "at least 1 dimension.*" + re.escape(str(shape_a)) + ".*" + re.escape(str(shape_b))
    with pytest.raises(ValueError, match=pattern):
        mg.matmul(a, b)
