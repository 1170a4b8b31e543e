"""Softmax and log-softmax along one axis, fused, with their composed references.

The fused ops are ``Softmax`` and ``LogSoftmax`` (called by ``softmax`` and
``log_softmax``); their oracles, ``softmax_composed`` and ``log_softmax_composed``,
are at the end of this file, and tests/test_nn_ops.py holds each pair equal.

    softmax(x)_i     = exp(x_i) / sum_j exp(x_j)
    log_softmax(x)_i = x_i - log sum_j exp(x_j)

Both are computed after subtracting the max along the axis, which changes
nothing mathematically and keeps every exp() at most 1, so logits of +-1e4 give
finite values and gradients.

A row that attention masks out entirely is all -inf. Its softmax is defined here
as all zeros (no attention anywhere, and a zero gradient), not the NaN of 0/0.
Its log-softmax is NaN, as in PyTorch: there is no log-probability to give.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_float, axis_from_dim, normalize_axes
from minigrad.ops.reductions import logsumexp_array, stable_shift

__all__ = ["softmax", "log_softmax", "softmax_composed", "log_softmax_composed"]


class Softmax(Function):
    """y = softmax(x) along ``axis``."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - stable_shift(x, self.axis))    # a fully masked row: shift by 0
        s = e.sum(axis=self.axis, keepdims=True)
        y = e / xp.where(s == 0, 1, s)                # a fully masked row: 0 / 1 = 0
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        # dy_i/dx_j = y_i (delta_ij - y_j)  =>  gx_j = y_j (gy_j - sum_i gy_i y_i)
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = log_softmax(x) along ``axis``."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        y = x - logsumexp_array(x, self.axis)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved
        softmax = get_array_module(y).exp(y)
        # dy_i/dx_j = delta_ij - softmax_j  =>  gx_j = gy_j - softmax_j sum_i gy_i
        return gy - softmax * gy.sum(axis=self.axis, keepdims=True)


def softmax(x, axis=-1, *, dim=None):
    """Softmax along ``axis`` (or PyTorch's ``dim``); a fully masked (all -inf) row gives zeros."""
    if dim is not None:
        axis = axis_from_dim("softmax", axis, dim, default=-1)
    x = as_float(x)
    (axis,) = normalize_axes(axis, x.ndim, "softmax")
    return Softmax(axis)(x)


def log_softmax(x, axis=-1, *, dim=None):
    """Log-softmax along ``axis`` (or PyTorch's ``dim``), computed stably."""
    if dim is not None:
        axis = axis_from_dim("log_softmax", axis, dim, default=-1)
    x = as_float(x)
    (axis,) = normalize_axes(axis, x.ndim, "log_softmax")
    return LogSoftmax(axis)(x)


# --------------------------------------------------------------------------- #
# Composed references: the same functions from primitive ops, the engine
# deriving their gradients. Tests hold the fused ops equal to these.
# --------------------------------------------------------------------------- #

def softmax_composed(x, axis=-1):
    """exp(x - max) / sum exp(x - max), from primitives (NaN on a fully masked row):
    the oracle of ``Softmax`` / ``softmax`` above."""
    e = (x - x.max(axis=axis, keepdims=True).detach()).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_composed(x, axis=-1):
    """x - max - log sum exp(x - max), from primitives: the oracle of ``LogSoftmax`` /
    ``log_softmax`` above (and, through ``cross_entropy_composed``, of cross-entropy)."""
    shifted = x - x.max(axis=axis, keepdims=True).detach()
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()
