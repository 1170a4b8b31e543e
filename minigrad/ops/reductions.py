"""Reductions over any axes, with ``keepdims``: sum, mean, max, var, logsumexp.

Their backward passes share one step: the gradient of the reduced output is
broadcast back over the axes that were reduced (``_expand``).
"""
import contextlib

from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_float, drop_axes, normalize_axes, reduced_shape

__all__ = ["sum", "mean", "max", "var", "logsumexp"]


def _expand(gy, x_shape, axes):
    """gy (reduced, with or without keepdims) broadcast back to the input's shape."""
    xp = get_array_module(gy)
    return xp.broadcast_to(gy.reshape(reduced_shape(x_shape, axes)), x_shape)


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    """y = sum_i x_i over ``axes``."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        # dy/dx_i = 1
        return _expand(gy, self.x_shape, self.axes)


class Mean(Function):
    """y = (1/N) sum_i x_i over ``axes`` (N elements each)."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = _count(self.x_shape, self.axes)
        # dy/dx_i = 1/N
        return _expand(gy, self.x_shape, self.axes) / n


class Max(Function):
    """y = max_i x_i over ``axes``; the gradient goes to the arg-max.

    Where k elements tie for the max, they share the gradient equally (as
    ``torch.amax``): each gets 1/k of it.
    """

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        y = x.max(axis=self.axes, keepdims=True)
        self.save_for_backward(x == y)
        return y if self.keepdims else drop_axes(y, self.axes)

    def backward(self, gy):
        is_max, = self.saved
        ties = is_max.sum(axis=self.axes, keepdims=True)
        share = is_max / ties                         # 1/k on each of k arg-maxes
        # dy/dx_i = 1/k at each of the k arg-maxes (k = 1 without ties), 0 elsewhere
        return _expand(gy, is_max.shape, self.axes) * share.astype(gy.dtype)


class Var(Function):
    """y = (1/(N - ddof)) sum_i (x_i - mean(x))^2 over ``axes`` (ddof=0: biased, as NumPy)."""

    def __init__(self, axes, keepdims, ddof):
        self.axes, self.keepdims, self.ddof = axes, keepdims, ddof

    def forward(self, x):
        centered = x - x.mean(axis=self.axes, keepdims=True)
        self.save_for_backward(centered)
        n = _count(x.shape, self.axes)
        return (centered * centered).sum(axis=self.axes, keepdims=self.keepdims) / (n - self.ddof)

    def backward(self, gy):
        centered, = self.saved
        n = _count(centered.shape, self.axes)
        # dy/dx_i = 2 (x_i - mean) / (N - ddof)   (the mean's own term sums to zero)
        return _expand(gy, centered.shape, self.axes) * (2 / (n - self.ddof)) * centered


class LogSumExp(Function):
    """y = log sum_i exp(x_i) over ``axes``.

    A slice of all -inf gives -inf (log 0) with a zero gradient.
    """

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        y = logsumexp_array(x, self.axes)             # (..., 1, ...)
        self.save_for_backward(x, y)
        return y if self.keepdims else drop_axes(y, self.axes)

    def backward(self, gy):
        x, y = self.saved
        xp = get_array_module(x)
        # dy/dx_i = exp(x_i) / sum_j exp(x_j) = exp(x_i - y)   (the softmax)
        p = xp.exp(x - xp.where(xp.isfinite(y), y, 0))
        return _expand(gy, x.shape, self.axes) * p


def logsumexp_array(x, axes):
    """log sum exp(x) over ``axes`` (keepdims) on a backend array, without overflow.

    Stable form: with m = max_i x_i, log sum_i exp(x_i) = m + log sum_i exp(x_i - m),
    and every exp(x_i - m) <= 1. Shared by LogSumExp, LogSoftmax and CrossEntropy.
    """
    xp = get_array_module(x)
    m = stable_shift(x, axes)                         # (..., 1, ...)
    s = xp.exp(x - m).sum(axis=axes, keepdims=True)
    with _ignore_log_of_zero(xp):
        return m + xp.log(s)


def stable_shift(x, axes):
    """max(x) over ``axes`` (keepdims), the shift that keeps exp(x - shift) <= 1.

    Where the max is not finite (a slice all -inf, fully masked) the shift is 0
    rather than -inf, since -inf - (-inf) is NaN; an empty slice has no max, and
    its shift is 0 as well.
    """
    xp = get_array_module(x)
    axes = (axes,) if isinstance(axes, int) else axes
    if x.size == 0:
        return xp.zeros(reduced_shape(x.shape, axes), dtype=x.dtype)
    m = x.max(axis=axes, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def _ignore_log_of_zero(xp):
    """NumPy warns on log(0) = -inf, which a slice of all -inf gives on purpose."""
    errstate = getattr(xp, "errstate", None)
    return errstate(divide="ignore") if errstate is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- #
# The functions users call
# --------------------------------------------------------------------------- #

def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes; an int; or a tuple)."""
    return Sum(normalize_axes(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``."""
    x = as_float(x)
    return Mean(normalize_axes(axis, x.ndim, "mean"), keepdims)(x)


def max(x, axis=None, keepdims=False):
    """Max over ``axis``; the gradient flows to the arg-max (shared among ties)."""
    axes = normalize_axes(axis, x.ndim, "max")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce over an empty axis (shape {x.shape}, axis {axis})")
    return Max(axes, keepdims)(x)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over ``axis``; ``ddof=0`` divides by N (NumPy's default), 1 by N - 1."""
    x = as_float(x)
    return Var(normalize_axes(axis, x.ndim, "var"), keepdims, ddof)(x)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, without overflow."""
    x = as_float(x)
    return LogSumExp(normalize_axes(axis, x.ndim, "logsumexp"), keepdims)(x)
