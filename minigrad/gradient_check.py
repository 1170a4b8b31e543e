"""Gradient checking: the analytic gradient against central finite differences.

For a function y = f(x_1, ..., x_n) the check draws a random upstream gradient
u (one per output) and compares, for every input x_i that requires grad,

    analytic:   d/dx_i <u, f(x)>          from backward(), with gy = u
    numerical:  (<u, f(x + eps e_j)> - <u, f(x - eps e_j)>) / (2 eps)   per element j

A random u, not the all-ones gradient of sum(y): softmax and layer norm have
gradients orthogonal to the ones vector, so sum(y) would pass a wrong backward.
The check runs in float64, where central differences are accurate to about
eps^2 ~ 1e-12 plus rounding ~ 1e-16 / eps ~ 1e-10.

``fast_mode=True`` compares one directional derivative per input instead, along
a random direction v (two forward passes per input instead of two per element),
for large inputs:

    analytic:   <d<u, f>/dx_i, v>
    numerical:  (<u, f(x_i + eps v)> - <u, f(x_i - eps v)>) / (2 eps)

It is weaker: one wrong element among many moves a single scalar by little, so
a small error in one element of a large input can pass. It never names an index.
The inputs are restored, and their ``.grad`` put back, however the check ends.
"""
import itertools

from minigrad.autograd import backward
from minigrad.backend import backend_of
from minigrad.function import no_grad
from minigrad.tensor import Tensor

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree; the message says where."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, seed=0):
    """Check the gradients of ``fn`` at ``inputs``; True, or raise ``GradcheckError``.

    Args:
        fn:      a function of the inputs returning a Tensor or a tuple of Tensors.
        inputs:  a Tensor or a sequence of them (other values are passed as they are);
                 every Tensor with requires_grad=True is checked and must be float64.
        eps:     the finite-difference step.
        atol, rtol: |analytic - numerical| <= atol + rtol * |numerical| must hold.
        fast_mode: check one random directional derivative instead of every element.
        seed:    seeds the upstream gradient and the direction (not the backend's rng).
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: expected at least one input with requires_grad=True, got none")
    for i in wrt:
        if inputs[i].dtype != "float64":
            raise TypeError(
                f"gradcheck: input {i} has dtype {inputs[i].dtype}; expected float64 "
                "(finite differences in float32 are too coarse): pass x.double()"
            )
        if inputs[i].creator is not None:
            raise ValueError(
                f"gradcheck: input {i} is the output of an op, not a leaf; pass a leaf "
                "(x.detach() with requires_grad=True) and compute the rest inside fn"
            )
    user_grads = [inputs[i].grad for i in wrt]
    try:
        return _gradcheck(fn, inputs, wrt, eps, atol, rtol, fast_mode, seed)
    finally:
        for i, grad in zip(wrt, user_grads):
            inputs[i].grad = grad


def _gradcheck(fn, inputs, wrt, eps, atol, rtol, fast_mode, seed):
    rng = backend_of(inputs[wrt[0]].data).new_rng(seed)

    # 1. The outputs and a random upstream gradient u for each.
    outputs = _tensor_outputs(fn(*inputs))
    for k, y in enumerate(outputs):
        if y.dtype.kind == "f" and y.dtype != "float64":
            raise TypeError(
                f"gradcheck: output {k} has dtype {y.dtype}; expected float64 "
                "(something in fn computes in lower precision)"
            )
    upstream = [rng.standard_normal(y.shape, dtype="float64") if y.dtype.kind == "f" else None
                for y in outputs]

    def objective():
        """<u, f(x)> as a Python float, recording no graph."""
        with no_grad():
            ys = _tensor_outputs(fn(*inputs))
        return sum(float((u * y.data).sum()) for u, y in zip(upstream, ys) if u is not None)

    # 2. The analytic gradient: backward() with gy = u.
    for i in wrt:
        inputs[i].grad = None
    roots = [(y, u) for y, u in zip(outputs, upstream) if u is not None and y.requires_grad]
    if roots:
        backward([y for y, _ in roots], [u for _, u in roots])
    analytic = {}
    for i in wrt:
        x = inputs[i]
        grad = x.grad if x.grad is not None else backend_of(x.data).xp.zeros_like(x.data)
        if grad.shape != x.shape or grad.dtype != x.dtype:
            raise GradcheckError(
                f"gradcheck: the gradient of input {i} has shape {grad.shape} and dtype "
                f"{grad.dtype}; expected {x.shape} and {x.dtype}"
            )
        analytic[i] = grad

    # 3. The numerical gradient, and the comparison.
    for i in wrt:
        if fast_mode:
            _check_direction(inputs[i], i, analytic[i], objective, rng, eps, atol, rtol)
        else:
            _check_elements(inputs[i], i, analytic[i], objective, eps, atol, rtol)
    return True


def _check_elements(x, i, analytic, objective, eps, atol, rtol):
    """Central differences for every element of input i; raise at the worst mismatch."""
    worst = None                                   # (excess over tolerance, index, a, n)
    for index in itertools.product(*(range(n) for n in x.shape)):
        original = float(x.data[index])
        try:
            x.data[index] = original + eps
            f_plus = objective()
            x.data[index] = original - eps
            f_minus = objective()
        finally:
            x.data[index] = original
        numerical = (f_plus - f_minus) / (2 * eps)
        a = float(analytic[index])
        excess = abs(a - numerical) - (atol + rtol * abs(numerical))
        if not excess <= 0 and (worst is None or not excess <= worst[0]):   # NaN counts as a failure
            worst = (excess, index, a, numerical)
    if worst is not None:
        _, index, a, numerical = worst
        raise GradcheckError(
            f"gradcheck: gradient of input {i} (shape {x.shape}) is wrong at index {index}: "
            f"analytic {a:.10g}, numerical {numerical:.10g} "
            f"(atol={atol}, rtol={rtol}, eps={eps})"
        )


def _check_direction(x, i, analytic, objective, rng, eps, atol, rtol):
    """The derivative of input i along one random direction v; raise if it disagrees."""
    v = rng.standard_normal(x.shape, dtype="float64")
    original = x.data.copy()
    try:
        x.data[...] = original + eps * v
        f_plus = objective()
        x.data[...] = original - eps * v
        f_minus = objective()
    finally:
        x.data[...] = original
    numerical = (f_plus - f_minus) / (2 * eps)
    a = float((analytic * v).sum())
    if not abs(a - numerical) <= atol + rtol * abs(numerical):
        raise GradcheckError(
            f"gradcheck (fast mode): the derivative of input {i} (shape {x.shape}) along a "
            f"random direction is wrong: analytic {a:.10g}, numerical {numerical:.10g} "
            f"(atol={atol}, rtol={rtol}, eps={eps}); rerun with fast_mode=False to find "
            "the index"
        )


def _tensor_outputs(outputs):
    """What ``fn`` returned as a tuple of Tensors, or a TypeError that names what came."""
    expected = "gradcheck: fn must return a Tensor or a tuple of Tensors; "
    hint = " (compute it with minigrad's ops, so that it has a gradient)"
    if isinstance(outputs, Tensor):
        return (outputs,)
    if not isinstance(outputs, (tuple, list)):
        raise TypeError(expected + f"got {_type_name(outputs)}" + hint)
    if not outputs:
        raise TypeError(expected + f"got an empty {type(outputs).__name__}")
    for k, y in enumerate(outputs):
        if not isinstance(y, Tensor):
            raise TypeError(expected + f"output {k} is {_type_name(y)}" + hint)
    return tuple(outputs)


def _type_name(value):
    """``float``, ``numpy.ndarray``, ``None``: the type of ``value`` as users write it."""
    if value is None:
        return "None"
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
