"""Reductions (minigrad/ops/reductions.py) against NumPy and finite differences.

Covers sum, mean, max, var (ddof 0 and 1) and logsumexp:
- over axis None / an int / a negative int / a tuple, keepdims True and False:
  forward values against NumPy, gradients by ``check_grad`` in float64, over
  hypothesis shapes with size-1 dimensions; sum also over size-0 dimensions;
- max: the gradient goes to the arg-max and ties share it equally (hand examples),
  inputs of gradient checks drawn without ties; an empty axis is refused;
- logsumexp: finite for inputs of +-1e4 and equal to NumPy's stable
  ``logaddexp.reduce``; a slice of all -inf gives -inf with a zero gradient;
- float32 stays float32 (outputs and gradients); an out-of-range axis is refused
  with a message naming it.
"""
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, arrays, assert_close, check_grad, shapes, tensor
from minigrad.backend import to_numpy


def distinct(shape):
    """Values 0.25 apart in a random order: no ties, so max is differentiable everywhere."""
    n = int(np.prod(shape))
    return st.permutations(range(n)).map(
        lambda p: (np.array(p, dtype=np.float64).reshape(shape) - n / 2) * 0.25)


def np_var_ddof1(x, axis, keepdims):
    return np.var(x, axis=axis, keepdims=keepdims, ddof=1)


# name: (minigrad function of (x, axis, keepdims), NumPy reference, values drawn)
REDUCTIONS = {
    "sum": (mg.sum, np.sum, arrays),
    "mean": (mg.mean, np.mean, arrays),
    "max": (mg.max, np.max, distinct),
    "var": (mg.var, np.var, arrays),
    "var_ddof1": (lambda x, axis, keepdims: mg.var(x, axis, keepdims, ddof=1), np_var_ddof1, arrays),
    "logsumexp": (mg.logsumexp, np.logaddexp.reduce, arrays),
}

AXIS_KINDS = ["None", "int", "negative-int", "tuple"]


def draw_shape_and_axis(data, kind, min_side=1):
    """A shape and an ``axis`` of the given kind that is valid for it."""
    if kind == "None":
        return data.draw(shapes(min_side=min_side), label="shape"), None
    shape = data.draw(shapes(min_dims=2 if kind == "tuple" else 1, min_side=min_side), label="shape")
    ndim = len(shape)
    axes = {
        "int": st.integers(0, ndim - 1),
        "negative-int": st.integers(-ndim, -1),
        "tuple": hnp.valid_tuple_axes(ndim, min_size=1),
    }[kind]
    return shape, data.draw(axes, label="axis")


def count(shape, axis):
    """How many elements each output of a reduction over ``axis`` sums."""
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", AXIS_KINDS)
@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reduction_matches_numpy_and_gradcheck(name, kind, keepdims, backend, data):
    fn, reference, values = REDUCTIONS[name]
    shape, axis = draw_shape_and_axis(data, kind)
    if name == "var_ddof1":
        assume(count(shape, axis) >= 2)                # N - 1 > 0
    x_np = data.draw(values(shape), label="x")
    x = tensor(x_np, backend, requires_grad=True)
    expected = reference(x_np, axis=axis, keepdims=keepdims)
    y = fn(x, axis=axis, keepdims=keepdims)
    assert y.dtype == np.float64 and y.shape == np.shape(expected)
    assert_close(y, expected, rtol=1e-10, atol=1e-12)
    check_grad(lambda t: fn(t, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reduction_float32_stays_float32(name, backend, data):
    fn, reference, values = REDUCTIONS[name]
    x64 = data.draw(values((2, 3, 4)))
    gy = np.random.default_rng(0).standard_normal((3,))
    grads = {}
    for dtype in (np.float32, np.float64):
        x = tensor(x64.astype(dtype), backend, requires_grad=True)
        y = fn(x, axis=(0, -1), keepdims=False)
        y.backward(tensor(gy.astype(dtype), backend))
        assert y.dtype == x.grad.dtype == dtype
        assert_close(y, reference(x64, axis=(0, 2), keepdims=False), rtol=1e-5, atol=1e-6)
        grads[dtype] = to_numpy(x.grad)
    assert_close(grads[np.float32], grads[np.float64], rtol=1e-4, atol=1e-6)   # float64: gradchecked


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, True), (-1, False), ((0, 2), True)])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_tensor_methods_match_numpy(name, axis, keepdims, backend):
    x_np = np.arange(24.0).reshape(2, 3, 4) % 7
    expected = getattr(np, name)(x_np, axis=axis, keepdims=keepdims)
    assert_close(getattr(tensor(x_np, backend), name)(axis=axis, keepdims=keepdims), expected, rtol=1e-12, atol=0)


def test_var_method_takes_ddof():
    x_np = np.array([[1.0, 2.0, 4.0], [0.0, -1.0, 3.0]])
    assert_close(mg.Tensor(x_np).var(axis=1, ddof=1), np.var(x_np, axis=1, ddof=1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_scalar_result_flows_into_further_ops(name, backend):
    fn = REDUCTIONS[name][0]
    x = tensor(np.array([[0.5, -1.25, 2.0], [1.0, 0.25, -0.75]]), backend, requires_grad=True)
    check_grad(lambda t: fn(t, axis=None, keepdims=False) * 3.0, [x])      # a scaled loss


# -- size-0 dimensions ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", AXIS_KINDS)
@given(data=st.data())
def test_sum_over_empty_edges(kind, keepdims, backend, data):
    shape, axis = draw_shape_and_axis(data, kind, min_side=0)
    assume(0 in shape)
    x_np = data.draw(arrays(shape))
    x = tensor(x_np, backend, requires_grad=True)
    expected = np.sum(x_np, axis=axis, keepdims=keepdims)     # zeros where an empty axis was summed
    y = mg.sum(x, axis=axis, keepdims=keepdims)
    assert y.shape == np.shape(expected)
    assert_close(y, expected, rtol=0, atol=0)
    check_grad(lambda t: mg.sum(t, axis=axis, keepdims=keepdims), [x])


# -- max: the arg-max and its ties ----------------------------------------------------

# x, axis, keepdims, gy, expected gradient: gy to the arg-max, 1/k of it to each of k ties
MAX_CASES = [
    pytest.param([[1.0, 5.0, 2.0], [7.0, 3.0, 7.0]], 1, False, [10.0, 20.0],
                 [[0.0, 10.0, 0.0], [10.0, 0.0, 10.0]], id="rows-one-tie"),
    pytest.param([[1.0, 5.0, 2.0], [7.0, 3.0, 7.0]], 0, True, [[1.0, 2.0, 3.0]],
                 [[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]], id="columns-keepdims"),
    pytest.param([3.0, 1.0, 3.0, 3.0], None, False, 6.0, [2.0, 0.0, 2.0, 2.0], id="three-way-tie"),
    pytest.param([[4.0, 4.0], [4.0, 0.0]], (0, 1), False, 3.0, [[1.0, 1.0], [1.0, 0.0]], id="tuple-axis"),
    pytest.param([[-1.0, -3.0]], -1, True, [[5.0]], [[5.0, 0.0]], id="negative-axis"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_values, axis, keepdims, gy, expected_grad", MAX_CASES)
def test_max_gradient_goes_to_the_argmax(x_values, axis, keepdims, gy, expected_grad, backend):
    x_np = np.array(x_values)
    x = tensor(x_np, backend, requires_grad=True)
    y = mg.max(x, axis=axis, keepdims=keepdims)
    assert_close(y, np.max(x_np, axis=axis, keepdims=keepdims), rtol=0, atol=0)
    y.backward(tensor(np.array(gy), backend))
    assert_close(x.grad, np.array(expected_grad), rtol=1e-15, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", [((2, 0), 1), ((0, 3), 0), ((0, 3), None), ((2, 0, 3), (0, 1)), ((0,), -1)])
def test_max_over_an_empty_axis_raises(shape, axis, backend):
    x = tensor(np.zeros(shape), backend)
    with pytest.raises(ValueError, match=r"max: cannot reduce over an empty axis"):
        mg.max(x, axis=axis)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_of_an_empty_tensor_over_a_non_empty_axis(backend):
    x = tensor(np.zeros((0, 3)), backend, requires_grad=True)
    assert mg.max(x, axis=1).shape == (0,)
    check_grad(lambda t: mg.max(t, axis=1), [x])


# -- logsumexp: large and infinite inputs ------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-3), (np.float64, 1e-10)])
def test_logsumexp_is_finite_and_stable_for_large_inputs(dtype, rtol, backend):
    x_np = np.array([[1e4, 1e4, -1e4], [-1e4, -1e4 + 1, -1e4 + 2], [1e4, -1e4, 0.0]], dtype=dtype)
    gy = np.array([1.0, -2.0, 0.5], dtype=dtype)
    x = tensor(x_np, backend, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # an overflow in exp would warn
        y = mg.logsumexp(x, axis=1)
        y.backward(tensor(gy, backend))
    x64 = x_np.astype(np.float64)
    expected = np.logaddexp.reduce(x64, axis=1)        # NumPy's stable pairwise form
    softmax = np.exp(x64 - expected[:, None])
    assert y.dtype == x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(to_numpy(x.grad)).all()
    assert_close(y, expected, rtol=1e-7, atol=0)
    assert_close(x.grad, gy[:, None] * softmax, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_of_an_all_neg_inf_row_is_neg_inf_with_zero_gradient(keepdims, backend):
    x_np = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]])
    gy = np.array([1.5, 2.0]).reshape((2, 1) if keepdims else (2,))
    x = tensor(x_np, backend, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no log(0) or inf - inf warnings
        y = mg.logsumexp(x, axis=1, keepdims=keepdims)
        y.backward(tensor(gy, backend))
    e = np.e
    assert_close(y, np.array([-np.inf, np.log(1 + e)]).reshape(gy.shape), rtol=1e-12, atol=0)
    assert_close(x.grad, [[0.0, 0.0, 0.0], [2.0 / (1 + e), 2.0 * e / (1 + e), 0.0]], rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_of_an_all_neg_inf_tensor(backend):
    x = tensor(np.full((2, 2), -np.inf), backend, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = mg.logsumexp(x)
        y.backward(tensor(np.array(3.0), backend))
    assert y.item() == -np.inf
    assert_close(x.grad, np.zeros((2, 2)), rtol=0, atol=0)


# -- bad axes ----------------------------------------------------------------------------

@pytest.mark.parametrize("axis, bad", [(2, 2), (-3, -3), ((0, 2), 2), ((-3, 1), -3)])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "var", "logsumexp"])
def test_out_of_range_axis_raises(name, axis, bad):
    x = mg.Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"axis {bad}\b.*out of range"):
        getattr(mg, name)(x, axis=axis)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var", "logsumexp"])
def test_repeated_axis_raises(name):
    with pytest.raises(ValueError, match=r"repeated axis"):
        getattr(mg, name)(mg.Tensor(np.zeros((2, 3))), axis=(1, -1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "var", "logsumexp"])
def test_backward_through_an_empty_batch_gives_an_empty_gradient(backend, name):
    x = tensor(np.zeros((0, 3)), backend, requires_grad=True)       # no rows, reduce along 1
    y = getattr(mg, name)(x, axis=1)
    assert y.shape == (0,)
    y.backward(tensor(np.zeros((0,)), backend).data)
    assert x.grad.shape == (0, 3)
