"""mg.gradcheck is not vacuous and reports well.

It passes correct ops (the library's and hand-written ``Function``s); it rejects
hand-written ``Function``s with deliberately wrong backwards, among them a softmax
and a layer norm whose bugs vanish under an all-ones upstream gradient, so that a
check of sum(y) passes them (shown here with such a checker); its message names
the input, the index and both values; fast_mode agrees; float32 inputs and
inputs without requires_grad are refused; only inputs that require grad are checked.
"""
import re

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import get_array_module
from helpers import BACKENDS, tensor

to_numpy = mg.backend.to_numpy


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- hand-written Functions: one right backward, and wrong ones ------------------------

class Softmax(mg.Function):
    """y = softmax(x) over the last axis; right backward: gx = y (gy - sum(gy y))."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


class SoftmaxWithoutSubtraction(Softmax):
    def backward(self, gy):
        y, = self.saved
        return y * gy                                   # the "- sum(gy y)" term is missing


class SoftmaxWithoutLeadingY(Softmax):
    def backward(self, gy):
        y, = self.saved
        return gy - (gy * y).sum(axis=-1, keepdims=True)   # forgot to multiply by y


class SoftmaxMeanInsteadOfDot(Softmax):
    def backward(self, gy):
        y, = self.saved
        return y * (gy - gy.mean(axis=-1, keepdims=True))  # mean(gy) where sum(gy y) belongs


class LayerNorm(mg.Function):
    """x_hat = (x - mean) / sqrt(var + eps) over the last axis (no gamma, beta).

    Right backward: gx = rstd (g - mean(g) - x_hat mean(g x_hat)), g = gy.
    """

    def forward(self, x):
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        rstd = 1 / ((xc * xc).mean(axis=-1, keepdims=True) + 1e-5) ** 0.5
        x_hat = xc * rstd
        self.save_for_backward(x_hat, rstd)
        return x_hat

    def backward(self, gy):
        x_hat, rstd = self.saved
        return rstd * (gy - gy.mean(axis=-1, keepdims=True)
                       - x_hat * (gy * x_hat).mean(axis=-1, keepdims=True))


class LayerNormWithoutScaleTerm(LayerNorm):
    def backward(self, gy):
        x_hat, rstd = self.saved
        return rstd * (gy - gy.mean(axis=-1, keepdims=True))       # no x_hat mean(g x_hat)


class LayerNormWithoutMeanTerm(LayerNorm):
    def backward(self, gy):
        x_hat, rstd = self.saved
        return rstd * (gy - x_hat * (gy * x_hat).mean(axis=-1, keepdims=True))   # no mean(g)


class Mul(mg.Function):
    """y = a * b (same shapes); right backward: (gy b, gy a)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved
        return gy * b, gy * a


class MulSwapped(Mul):
    def backward(self, gy):
        a, b = self.saved
        return gy * a, gy * b                          # each input gets its own value


class MulForgetsOperand(Mul):
    def backward(self, gy):
        a, b = self.saved
        return gy * b, gy                              # gb forgot the factor a


class Square(mg.Function):
    """y = x^2; right backward: 2 x gy."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        x, = self.saved
        return 2 * x * gy


class SquareHalfGradient(Square):
    def backward(self, gy):
        x, = self.saved
        return x * gy                                  # off by a factor of 2


def call(function_class):
    """The op as a function of Tensors: a fresh Function object per call."""
    return lambda *xs: function_class()(*xs)


RIGHT = {                                              # (function, input shapes)
    "softmax": (call(Softmax), [(3, 4)]),
    "layer_norm": (call(LayerNorm), [(3, 4)]),
    "mul": (call(Mul), [(3, 4), (3, 4)]),
    "square": (call(Square), [(3, 4)]),
    "mg.softmax": (lambda x: mg.softmax(x, axis=0), [(3, 4)]),
    "mg.layer_norm": (lambda x, w: mg.layer_norm(x, 4, weight=w), [(3, 4), (4,)]),
    "mg.matmul_tanh": (lambda a, b: mg.tanh(a @ b), [(3, 4), (4, 2)]),
}

WRONG = {                                  # (function, input shapes, a sum(y) check passes it)
    "softmax_without_subtraction": (call(SoftmaxWithoutSubtraction), [(3, 4)], False),
    "softmax_without_leading_y": (call(SoftmaxWithoutLeadingY), [(3, 4)], True),
    "softmax_mean_instead_of_dot": (call(SoftmaxMeanInsteadOfDot), [(3, 4)], True),
    "layer_norm_without_scale_term": (call(LayerNormWithoutScaleTerm), [(3, 4)], True),
    "layer_norm_without_mean_term": (call(LayerNormWithoutMeanTerm), [(3, 4)], False),
    "mul_swapped": (call(MulSwapped), [(3, 4), (3, 4)], False),
    "mul_forgets_operand": (call(MulForgetsOperand), [(3, 4), (3, 4)], False),
    "square_half_gradient": (call(SquareHalfGradient), [(3, 4)], False),
}


def inputs_for(input_shapes, backend):
    """float64 inputs of these shapes, random, requiring grad."""
    return [tensor(random(shape, seed=i + 1), backend, requires_grad=True)
            for i, shape in enumerate(input_shapes)]


# -- correct ops pass, wrong ones are rejected ---------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fast_mode", [False, True])
@pytest.mark.parametrize("name", RIGHT)
def test_gradcheck_passes_correct_ops(backend, fast_mode, name):
    fn, input_shapes = RIGHT[name]
    assert mg.gradcheck(fn, inputs_for(input_shapes, backend), fast_mode=fast_mode) is True


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fast_mode", [False, True])
@pytest.mark.parametrize("name", WRONG)
def test_gradcheck_rejects_wrong_backwards(backend, fast_mode, name):
    fn, input_shapes, _ = WRONG[name]
    with pytest.raises(mg.GradcheckError, match="fast mode" if fast_mode else "is wrong at index"):
        mg.gradcheck(fn, inputs_for(input_shapes, backend), fast_mode=fast_mode)


def sum_of_outputs_check(fn, x, eps=1e-6):
    """The flawed checker: backward of sum(y) (an all-ones upstream gradient)
    against central differences of sum(y). What mg.gradcheck must not be."""
    y = fn(x)
    y.backward(tensor(np.ones(y.shape), y.backend))
    analytic = to_numpy(x.grad)
    x_np = x.numpy()
    numerical = np.zeros_like(x_np)
    for index in np.ndindex(x_np.shape):
        shifted = []
        for step in (eps, -eps):
            moved = x_np.copy()
            moved[index] += step
            shifted.append(fn(tensor(moved, x.backend)).numpy().sum())
        numerical[index] = (shifted[0] - shifted[1]) / (2 * eps)
    return np.allclose(analytic, numerical, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wrong, right", [
    (SoftmaxWithoutLeadingY, Softmax),
    (SoftmaxMeanInsteadOfDot, Softmax),
    (LayerNormWithoutScaleTerm, LayerNorm),
])
def test_bugs_that_a_sum_of_outputs_check_misses_are_caught(backend, wrong, right):
    x = random((3, 4), seed=1)

    def grad_along(function_class, gy):
        xt = tensor(x, backend, requires_grad=True)
        function_class()(xt).backward(tensor(gy, backend))
        return to_numpy(xt.grad)

    # Under an all-ones upstream gradient the wrong backward gives the right gradient...
    ones = np.ones(x.shape)
    np.testing.assert_allclose(grad_along(wrong, ones), grad_along(right, ones), atol=1e-10)
    assert sum_of_outputs_check(call(wrong), tensor(x, backend, requires_grad=True))
    # ...but not along a random one, and mg.gradcheck (which uses one) rejects it.
    gy = random(x.shape, seed=3)
    assert not np.allclose(grad_along(wrong, gy), grad_along(right, gy), atol=1e-3)
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(call(wrong), [tensor(x, backend, requires_grad=True)])
    assert mg.gradcheck(call(right), [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [name for name, (_, input_shapes, sum_check_passes) in WRONG.items()
                                  if len(input_shapes) == 1 and not sum_check_passes])
def test_the_sum_of_outputs_checker_is_not_a_strawman(backend, name):
    # It is a real check: it catches the bugs that do not vanish under an all-ones gradient.
    fn, (shape,), _ = WRONG[name]
    assert not sum_of_outputs_check(fn, tensor(random(shape, seed=1), backend, requires_grad=True))


# -- the message -------------------------------------------------------------------------

class ScaledAddWrongAtOneElement(mg.Function):
    """y = a + 2 b, whose backward gives 3 gy instead of 2 gy at b[1, 2] only."""

    def forward(self, a, b):
        return a + 2 * b

    def backward(self, gy):
        gb = 2 * gy
        gb[1, 2] = 3 * gy[1, 2]
        return gy, gb


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_message_names_the_input_the_index_and_both_values(backend):
    # Input 0 is a plain float and input 1 is right: the culprit is input 2 at (1, 2),
    # where the analytic value is 3/2 of the numerical one whatever the upstream gradient.
    a = tensor(random((2, 3), seed=1), backend, requires_grad=True)
    b = tensor(random((2, 3), seed=2), backend, requires_grad=True)
    with pytest.raises(mg.GradcheckError) as error:
        mg.gradcheck(lambda c, a, b: ScaledAddWrongAtOneElement()(a, b) * c, [0.5, a, b])
    found = re.search(r"input 2 \(shape \(2, 3\)\) is wrong at index \(1, 2\): "
                      r"analytic (\S+), numerical (\S+)", str(error.value))
    assert found, str(error.value)
    analytic, numerical = float(found[1]), float(found[2])
    assert abs(numerical) > 1e-3
    assert analytic / numerical == pytest.approx(1.5, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_fast_mode_message_gives_both_values_and_says_how_to_find_the_index(backend):
    with pytest.raises(mg.GradcheckError,
                       match=r"input 0 \(shape \(3, 4\)\) along a random direction is wrong: "
                             r"analytic \S+, numerical \S+.*fast_mode=False"):
        mg.gradcheck(call(SquareHalfGradient), inputs_for([(3, 4)], backend), fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["mul_swapped", "square_half_gradient"])
def test_a_failed_check_leaves_the_inputs_as_they_were(backend, name):
    fn, input_shapes, _ = WRONG[name]
    inputs = inputs_for(input_shapes, backend)
    before = [x.numpy() for x in inputs]
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(fn, inputs)
    for x, x_before in zip(inputs, before):
        np.testing.assert_array_equal(x.numpy(), x_before)


# -- what is refused, and what is checked ------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_inputs_are_refused(backend):
    x = tensor(random((2, 3)).astype(np.float32), backend, requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 has dtype float32; expected float64"):
        mg.gradcheck(call(Square), [x])


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_input_requiring_grad_is_refused(backend):
    with pytest.raises(ValueError, match=r"at least one input with requires_grad=True"):
        mg.gradcheck(call(Square), [tensor(random((2, 3)), backend)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_inputs_that_require_grad_are_checked(backend):
    # MulForgetsOperand is wrong for b only: the same call passes while b is a
    # constant, and fails on input 1 as soon as b requires grad.
    a = tensor(random((3, 4), seed=1), backend, requires_grad=True)
    b_constant = tensor(random((3, 4), seed=2), backend)
    assert mg.gradcheck(call(MulForgetsOperand), [a, b_constant]) is True
    assert b_constant.grad is None
    b = tensor(random((3, 4), seed=2), backend, requires_grad=True)
    with pytest.raises(mg.GradcheckError, match=r"input 1 "):
        mg.gradcheck(call(MulForgetsOperand), [a, b])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fast_mode", [False, True])
def test_inputs_are_restored_when_fn_raises_midway(backend, fast_mode):
    x = tensor(np.array([1.0, 2.0]), backend, requires_grad=True)
    calls = []

    def fails_on_the_third_call(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("boom")
        return x * 2.0
    with pytest.raises(KeyError):
        mg.gradcheck(fails_on_the_third_call, [x], fast_mode=fast_mode)
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_users_grad_is_put_back(backend):
    x = tensor(np.array([1.0, 2.0]), backend, requires_grad=True)
    x.grad = tensor(np.array([7.0, 8.0]), backend).data
    mg.gradcheck(lambda x: x * 3.0, [x])
    np.testing.assert_array_equal(mg.backend.to_numpy(x.grad), [7.0, 8.0])


def test_a_non_leaf_input_is_refused_clearly():
    x = mg.Tensor(np.ones(2), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match="input 0 is the output of an op, not a leaf"):
        mg.gradcheck(lambda x: x * 3.0, [x])
