"""Elementwise ops (minigrad/ops/elementwise.py) against NumPy and finite differences.

Covers add sub mul div neg pow exp log sqrt abs tanh sigmoid relu gelu (both forms)
maximum minimum where clip astype, and the Python operators that call them:
- forward values against NumPy on the same arrays, gradients by ``check_grad`` in
  float64, over hypothesis shapes (broadcast pairs for two operands, size-0 edges);
- inputs drawn away from kinks, poles and clip bounds, where finite differences
  are meaningful; ties of maximum/minimum checked by hand against the half-share rule;
- dtypes: float32 stays float32 (Python scalars, integer tensors and the gradients
  included), float32 mixed with float64 is refused, astype sends the gradient back
  in the source dtype; sigmoid at +-1000; NumPy arrays on the left of an operator.
"""
import math
import operator
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, arrays, assert_close, broadcast_pairs, check_grad, shapes, tensor
from minigrad.backend import backend_by_name, to_numpy


# -- values: where in the domain the inputs are drawn ---------------------------

def any_value(shape):
    return arrays(shape)


def positive(shape):
    return arrays(shape, 0.5, 2.0)


def away_from(*points, margin=0.1):
    """Values in [-2, 2] at least ``margin`` from each point (a kink, a pole, a bound)."""
    edges = [-2.0] + [e for p in sorted(points) for e in (p - margin, p + margin)] + [2.0]
    pieces = st.one_of([st.floats(lo, hi) for lo, hi in zip(edges[::2], edges[1::2])])
    return lambda shape: hnp.arrays(np.float64, shape, elements=pieces)


def on_grid(offset):
    """Multiples of 0.5 plus ``offset``: two grids with offsets 0 and 0.25 never tie."""
    return lambda shape: hnp.arrays(
        np.float64, shape, elements=st.integers(-4, 4).map(lambda k: 0.5 * k + offset))


# -- NumPy references --------------------------------------------------------------

def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gelu_exact(x):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return x * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# name: (minigrad function, NumPy reference, values drawn)
UNARY = {
    "neg": (mg.neg, np.negative, any_value),
    "-x": (operator.neg, np.negative, any_value),
    "exp": (mg.exp, np.exp, any_value),
    "log": (mg.log, np.log, positive),
    "sqrt": (mg.sqrt, np.sqrt, positive),
    "abs": (mg.abs, np.abs, away_from(0.0)),
    "tanh": (mg.tanh, np.tanh, any_value),
    "sigmoid": (mg.sigmoid, np_sigmoid, any_value),
    "relu": (mg.relu, lambda x: np.maximum(x, 0.0), away_from(0.0)),
    "gelu_exact": (mg.gelu, np_gelu_exact, any_value),
    "gelu_tanh": (lambda x: mg.gelu(x, approximate="tanh"), np_gelu_tanh, any_value),
    "x**2": (lambda x: x ** 2, lambda x: x ** 2, any_value),
    "x**3": (lambda x: x ** 3, lambda x: x ** 3, any_value),
    "x**0.5": (lambda x: x ** 0.5, lambda x: x ** 0.5, positive),
    "pow(x,-1.5)": (lambda x: mg.pow(x, -1.5), lambda x: x ** -1.5, positive),
    "2**x": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, any_value),
    "clip_both": (lambda x: mg.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), away_from(-0.5, 0.5)),
    "clip_min": (lambda x: mg.clip(x, min=-0.5), lambda x: np.maximum(x, -0.5), away_from(-0.5)),
    "clip_max": (lambda x: x.clip(max=0.5), lambda x: np.minimum(x, 0.5), away_from(0.5)),
}

# name: (minigrad function, NumPy reference, values of a, values of b)
BINARY = {
    "add": (mg.add, np.add, any_value, any_value),
    "sub": (mg.sub, np.subtract, any_value, any_value),
    "mul": (mg.mul, np.multiply, any_value, any_value),
    "div": (mg.div, np.divide, any_value, away_from(0.0, margin=0.5)),
    "pow": (mg.pow, np.power, positive, any_value),
    "maximum": (mg.maximum, np.maximum, on_grid(0.0), on_grid(0.25)),
    "minimum": (mg.minimum, np.minimum, on_grid(0.25), on_grid(0.0)),
    "a+b": (operator.add, np.add, any_value, any_value),
    "a-b": (operator.sub, np.subtract, any_value, any_value),
    "a*b": (operator.mul, np.multiply, any_value, any_value),
    "a/b": (operator.truediv, np.divide, any_value, away_from(0.0, margin=0.5)),
    "a**b": (operator.pow, np.power, positive, any_value),
}


def run_backward(fn, arrays_in, gy, backend):
    """fn on fresh tensors (all requiring grad) made from ``arrays_in``; y and the inputs' grads."""
    xs = [tensor(a, backend, requires_grad=True) for a in arrays_in]
    y = fn(*xs)
    y.backward(tensor(gy.astype(y.dtype), backend))
    return y, [x.grad for x in xs]


# -- one operand ------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_matches_numpy_and_gradcheck(name, backend, data):
    fn, reference, values = UNARY[name]
    x_np = data.draw(values(data.draw(shapes(min_side=0))))
    x = tensor(x_np, backend, requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float64 and y.shape == x_np.shape
    assert_close(y, reference(x_np), rtol=1e-10, atol=1e-12)
    check_grad(fn, [x])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_float32_stays_float32(name, backend, data):
    fn, reference, values = UNARY[name]
    x64 = data.draw(values((2, 3)))
    gy = np.random.default_rng(0).standard_normal((2, 3))
    y32, (g32,) = run_backward(fn, [x64.astype(np.float32)], gy, backend)
    _, (g64,) = run_backward(fn, [x64], gy, backend)          # gradchecked above
    assert y32.dtype == np.float32 and g32.dtype == np.float32
    assert_close(y32, reference(x64.astype(np.float32).astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert_close(g32, to_numpy(g64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_is_stable_at_extremes(dtype, backend):
    x_np = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype)
    gy = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=dtype)
    x = tensor(x_np, backend, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # an overflow in exp would warn
        y = mg.sigmoid(x)
        y.backward(tensor(gy, backend))
    x64 = x_np.astype(np.float64)
    expected = np.exp(-np.logaddexp(0.0, -x64))        # 1 / (1 + e^-x), in log space
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(to_numpy(x.grad)).all()
    assert y.numpy()[0] == 0.0 and y.numpy()[-1] == 1.0
    assert_close(y, expected, rtol=1e-6, atol=0.0)
    assert_close(x.grad, gy * np.exp(-np.logaddexp(0.0, -x64) - np.logaddexp(0.0, x64)),
                 rtol=1e-6, atol=1e-12)


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate.*'erf'"):
        mg.gelu(mg.Tensor([1.0]), approximate="erf")


def test_clip_needs_a_bound():
    with pytest.raises(ValueError, match="min and max"):
        mg.clip(mg.Tensor([1.0]))


# -- two operands -----------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_matches_numpy_and_gradcheck(name, backend, data):
    fn, reference, values_a, values_b = BINARY[name]
    shape_a, shape_b = data.draw(broadcast_pairs()).input_shapes
    a_np, b_np = data.draw(values_a(shape_a)), data.draw(values_b(shape_b))
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    expected = reference(a_np, b_np)
    y = fn(a, b)
    assert y.dtype == np.float64 and y.shape == expected.shape
    assert_close(y, expected, rtol=1e-10, atol=1e-12)
    check_grad(fn, [a, b])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_empty_edges(name, backend, data):
    fn, reference, values_a, values_b = BINARY[name]
    pair = data.draw(broadcast_pairs(min_side=0).filter(lambda s: 0 in s.result_shape))
    shape_a, shape_b = pair.input_shapes
    a_np, b_np = data.draw(values_a(shape_a)), data.draw(values_b(shape_b))
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    y = fn(a, b)
    assert y.shape == reference(a_np, b_np).shape == pair.result_shape
    check_grad(fn, [a, b])      # a non-empty operand broadcast to nothing gets a zero gradient


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_float32_stays_float32(name, backend, data):
    fn, reference, values_a, values_b = BINARY[name]
    a64, b64 = data.draw(values_a((2, 3))), data.draw(values_b((3,)))
    gy = np.random.default_rng(0).standard_normal((2, 3))
    a32, b32 = a64.astype(np.float32), b64.astype(np.float32)
    y32, grads32 = run_backward(fn, [a32, b32], gy, backend)
    _, grads64 = run_backward(fn, [a64, b64], gy, backend)     # gradchecked above
    assert y32.dtype == np.float32 and [g.dtype for g in grads32] == [np.float32, np.float32]
    assert_close(y32, reference(a32.astype(np.float64), b32.astype(np.float64)), rtol=1e-5, atol=1e-6)
    for g32, g64 in zip(grads32, grads64):
        assert_close(g32, to_numpy(g64), rtol=1e-4, atol=1e-5)


# Ties: each operand gets half of gy where a == b (worked out by hand from that rule).
# op, a, b, gy, expected grad of a, expected grad of b
TIES = [
    pytest.param(mg.maximum, [1.0, 2.0, 3.0], [1.0, 0.0, 5.0], [1.0, 10.0, 100.0],
                 [0.5, 10.0, 0.0], [0.5, 0.0, 100.0], id="maximum"),
    pytest.param(mg.minimum, [1.0, 2.0, 3.0], [1.0, 0.0, 5.0], [1.0, 10.0, 100.0],
                 [0.5, 0.0, 100.0], [0.5, 10.0, 0.0], id="minimum"),
    # a (2, 1) against b (2,): row 0 ties in both columns, row 1 has a < b
    pytest.param(mg.maximum, [[2.0], [1.0]], [2.0, 2.0], [[1.0, 2.0], [4.0, 8.0]],
                 [[1.5], [0.0]], [4.5, 9.0], id="maximum-broadcast"),
    pytest.param(mg.minimum, [[2.0], [1.0]], [2.0, 2.0], [[1.0, 2.0], [4.0, 8.0]],
                 [[1.5], [12.0]], [0.5, 1.0], id="minimum-broadcast"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn, a, b, gy, expected_ga, expected_gb", TIES)
def test_maximum_minimum_ties_share_the_gradient(fn, a, b, gy, expected_ga, expected_gb, backend):
    _, (ga, gb) = run_backward(fn, [np.array(a), np.array(b)], np.array(gy), backend)
    assert_close(ga, np.array(expected_ga), rtol=0, atol=0)
    assert_close(gb, np.array(expected_gb), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_where_matches_numpy_and_gradcheck(backend, data):
    shape_c, shape_a, shape_b = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3)).input_shapes
    c_np = data.draw(hnp.arrays(np.bool_, shape_c))
    a_np, b_np = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    c = tensor(c_np, backend)
    a, b = tensor(a_np, backend, requires_grad=True), tensor(b_np, backend, requires_grad=True)
    assert_close(mg.where(c, a, b), np.where(c_np, a_np, b_np), rtol=0, atol=0)
    check_grad(mg.where, [c, a, b])


@pytest.mark.parametrize("backend", BACKENDS)
def test_where_takes_a_comparison_and_refuses_a_float_condition(backend):
    x_np = np.array([[-1.0, 2.0], [3.0, -4.0]])
    x = tensor(x_np, backend)
    assert_close(mg.where(x > 0, x, 0.0), np.where(x_np > 0, x_np, 0.0), rtol=0, atol=0)
    with pytest.raises(TypeError, match="boolean condition.*float64"):
        mg.where(x, x, x)


# -- 0-d tensors: NumPy turns 0-d arithmetic into scalars, gradients must stay arrays --

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(UNARY) + list(BINARY))
def test_gradient_of_a_0d_tensor_is_a_backend_array(name, backend):
    fn = UNARY[name][0] if name in UNARY else BINARY[name][0]
    inputs = [0.75] if name in UNARY else [1.25, 0.75]
    _, grads = run_backward(fn, [np.array(v) for v in inputs], np.array(-1.5), backend)
    for g in grads:
        assert isinstance(g, backend_by_name(backend).array_type) and g.shape == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0d_gradients_flow_through_a_chain_of_ops(backend):
    a = tensor(np.array(1.25), backend, requires_grad=True)
    b = tensor(np.array(0.75), backend, requires_grad=True)
    check_grad(lambda a, b: mg.maximum(a * b, b - a) ** 2.0, [a, b])


# -- astype -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source, target", [(np.float32, np.float64), (np.float64, np.float32)])
@given(data=st.data())
def test_astype_gradient_comes_back_in_the_source_dtype(source, target, backend, data):
    x_np = data.draw(arrays(data.draw(shapes()))).astype(source)
    gy = data.draw(arrays(x_np.shape)).astype(target)
    x = tensor(x_np, backend, requires_grad=True)
    y = mg.ops.astype(x, target)
    y.backward(tensor(gy, backend))
    assert y.dtype == target and x.grad.dtype == source
    assert_close(y, x_np.astype(target), rtol=0, atol=0)
    assert_close(x.grad, gy.astype(source), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_astype_gradcheck(backend, data):
    x = tensor(data.draw(arrays(data.draw(shapes(min_side=0)))), backend, requires_grad=True)
    check_grad(lambda t: (t * t).astype(np.float64), [x])


# -- dtypes of mixed operands ------------------------------------------------------

SCALAR_EXPRESSIONS = {
    "x*2": lambda x: x * 2, "2*x": lambda x: 2 * x, "x+1.5": lambda x: x + 1.5,
    "2-x": lambda x: 2 - x, "x-0.5": lambda x: x - 0.5, "1/x": lambda x: 1 / x,
    "x/3": lambda x: x / 3, "x**2": lambda x: x ** 2, "2**x": lambda x: 2 ** x,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SCALAR_EXPRESSIONS)
def test_python_scalars_keep_the_tensor_dtype(name, backend):
    expression = SCALAR_EXPRESSIONS[name]
    x64 = np.array([[0.5, 1.25, 2.0], [0.75, 1.5, 1.75]])
    gy = np.random.default_rng(0).standard_normal((2, 3))
    y32, (g32,) = run_backward(expression, [x64.astype(np.float32)], gy, backend)
    y64, (g64,) = run_backward(expression, [x64], gy, backend)
    assert y32.dtype == g32.dtype == np.float32 and y64.dtype == g64.dtype == np.float64
    assert_close(y32, expression(x64), rtol=1e-6, atol=0)
    assert_close(y64, expression(x64), rtol=1e-12, atol=0)
    assert_close(g32, to_numpy(g64), rtol=1e-5, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("int_first", [True, False], ids=["int-op-float", "float-op-int"])
@pytest.mark.parametrize("name", BINARY)
def test_int_tensor_with_float_tensor_gives_the_float_dtype(name, int_first, float_dtype, backend):
    fn, reference, _, _ = BINARY[name]
    i_np = np.array([1, 2, 3], dtype=np.int64)
    f_np = np.array([0.5, 1.5, 2.0], dtype=float_dtype)
    i, f = tensor(i_np, backend), tensor(f_np, backend, requires_grad=True)
    y = fn(i, f) if int_first else fn(f, i)
    expected = reference(i_np, f_np.astype(np.float64)) if int_first else reference(f_np.astype(np.float64), i_np)
    assert y.dtype == float_dtype
    assert_close(y, expected, rtol=1e-6, atol=0)
    y.backward(tensor(np.array([0.5, -1.0, 2.0], dtype=float_dtype), backend))
    assert f.grad.dtype == float_dtype


MIXED = dict(BINARY, where=(lambda a, b: mg.where(a > 0, a, b), None, None, None))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MIXED)
def test_float32_mixed_with_float64_raises(name, backend):
    fn = MIXED[name][0]
    a = tensor(np.ones(3, dtype=np.float32), backend)
    b = tensor(np.ones(3, dtype=np.float64), backend)
    with pytest.raises(TypeError, match=r"float32 and float64"):
        fn(a, b)
    with pytest.raises(TypeError, match=r"float32 and float64"):
        fn(b, a)


@pytest.mark.parametrize("name", ["a+b", "a-b", "a*b", "a/b", "a**b"])
def test_numpy_array_on_the_left(name):
    op, reference, _, _ = BINARY[name]
    a_np = np.array([[0.5, 1.25, 2.0]])                          # (1, 3), NumPy
    t_np = np.array([[0.75], [1.5]])                             # (2, 1), a Tensor
    y = op(a_np.astype(np.float32), tensor(t_np.astype(np.float32)))
    assert isinstance(y, mg.Tensor) and y.dtype == np.float32 and y.shape == (2, 3)
    assert_close(y, reference(a_np, t_np), rtol=1e-6, atol=0)
    check_grad(lambda t: op(a_np, t), [tensor(t_np, requires_grad=True)])


def test_clip_of_an_integer_tensor_with_an_infinite_bound_gives_float32():
    y = mg.clip(mg.Tensor([-3, 0, 5]), min=-1, max=float("inf"))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [-1.0, 0.0, 5.0])
