"""Gradient checking: the analytic gradient against central finite differences.

For a function y = f(x_1, ..., x_n) the check draws a random upstream gradient
u (one per output) and compares, for every input x_i that requires grad,

    analytic:   d/dx_i <u, f(x)>          from backward(), with gy = u
    numerical:  (<u, f(x + eps e_j)> - <u, f(x - eps e_j)>) / (2 eps)   per element j

A random u, not the all-ones gradient of sum(y): softmax and layer norm have
gradients orthogonal to the ones vector, so sum(y) would pass a wrong backward.
The check runs in float64, where central differences are accurate to about
eps^2 ~ 1e-12 plus rounding ~ 1e-16 / eps ~ 1e-10.

``fast_mode=True`` compares one directional derivative instead, along a random
direction v (two forward passes instead of two per element), for large inputs:

    analytic:   sum_i <d<u, f>/dx_i, v_i>
    numerical:  (<u, f(x + eps v)> - <u, f(x - eps v)>) / (2 eps)
"""
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
    rng = backend_of(inputs[wrt[0]].data).new_rng(seed)

    # 1. The outputs and a random upstream gradient u for each.
    outputs = _as_tuple(fn(*inputs))
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
            ys = _as_tuple(fn(*inputs))
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
    if fast_mode:
        _check_direction(inputs, wrt, analytic, objective, rng, eps, atol, rtol)
    else:
        for i in wrt:
            _check_elements(inputs[i], i, analytic[i], objective, eps, atol, rtol)
    return True


def _check_elements(x, i, analytic, objective, eps, atol, rtol):
    """Central differences for every element of input i; raise at the worst mismatch."""
    worst = None                                   # (excess over tolerance, index, a, n)
    for index in _indices(x.shape):
        original = float(x.data[index])
        x.data[index] = original + eps
        f_plus = objective()
        x.data[index] = original - eps
        f_minus = objective()
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


def _check_direction(inputs, wrt, analytic, objective, rng, eps, atol, rtol):
    """One directional derivative along a random v; raise if it disagrees."""
    directions = {i: rng.standard_normal(inputs[i].shape, dtype="float64") for i in wrt}
    originals = {i: inputs[i].data.copy() for i in wrt}
    for i in wrt:
        inputs[i].data[...] = originals[i] + eps * directions[i]
    f_plus = objective()
    for i in wrt:
        inputs[i].data[...] = originals[i] - eps * directions[i]
    f_minus = objective()
    for i in wrt:
        inputs[i].data[...] = originals[i]
    numerical = (f_plus - f_minus) / (2 * eps)
    a = sum(float((analytic[i] * directions[i]).sum()) for i in wrt)
    if not abs(a - numerical) <= atol + rtol * abs(numerical):
        raise GradcheckError(
            f"gradcheck (fast mode): the directional derivative along a random direction "
            f"of inputs {wrt} is wrong: analytic {a:.10g}, numerical {numerical:.10g} "
            f"(atol={atol}, rtol={rtol}, eps={eps}); rerun with fast_mode=False to find "
            "the input and index"
        )


def _indices(shape):
    """Every index tuple of an array of ``shape``, in row-major order."""
    if not shape:
        yield ()
        return
    for flat in range(_prod(shape)):
        index = []
        for n in reversed(shape):
            flat, j = divmod(flat, n)
            index.append(j)
        yield tuple(reversed(index))


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
