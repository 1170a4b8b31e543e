"""Reductions over any axes, with ``keepdims``: sum, mean, max, min, var, logsumexp;
and argmax, argmin (indices, no gradient).

Their backward passes share one step: the gradient of the reduced output is
broadcast back over the axes that were reduced (``_expand``).

Each takes NumPy's ``axis``/``keepdims`` or PyTorch's ``dim``/``keepdim``. Where the
two libraries differ, the spelling chooses: ``max(x, dim=1)`` is PyTorch's
``(values, indices)``, ``max(x, axis=1)`` NumPy's values; ``var(x, dim=1)`` divides
by N - 1 as PyTorch, ``var(x, axis=1)`` by N as NumPy.
"""
import collections
import contextlib

from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import (
    as_float, drop_axes, normalize_axes, pytorch_reduction_args, reduced_shape,
)
from minigrad.ops.shape import squeeze, take_along_axis
from minigrad.tensor import Tensor, as_tensor

__all__ = ["sum", "mean", "max", "min", "var", "logsumexp", "argmax", "argmin"]


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
        y = self.extreme(x, axis=self.axes, keepdims=True)
        self.save_for_backward(x == y)
        return y if self.keepdims else drop_axes(y, self.axes)

    @staticmethod
    def extreme(x, **kwargs):
        return x.max(**kwargs)

    def backward(self, gy):
        is_max, = self.saved
        ties = is_max.sum(axis=self.axes, keepdims=True)
        share = is_max / ties                         # 1/k on each of k arg-maxes
        # dy/dx_i = 1/k at each of the k arg-maxes (k = 1 without ties), 0 elsewhere
        return _expand(gy, is_max.shape, self.axes) * share.astype(gy.dtype)


class Min(Max):
    """y = min_i x_i over ``axes``; the gradient goes to the arg-min, shared among
    ties as for ``Max`` (whose backward it is: 1/k at each of the k arg-mins)."""

    @staticmethod
    def extreme(x, **kwargs):
        return x.min(**kwargs)


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
    e = xp.empty_like(x)                              # exp(x - m) in place: one array of x's size
    xp.subtract(x, m, out=e)
    xp.exp(e, out=e)
    s = e.sum(axis=axes, keepdims=True)
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

def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Sum over ``axis`` (None: all axes; an int; or a tuple)."""
    if dim is not None or keepdim is not None:
        axis, keepdims = pytorch_reduction_args("sum", axis, keepdims, dim, keepdim)
    return Sum(normalize_axes(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Mean over ``axis``."""
    if dim is not None or keepdim is not None:
        axis, keepdims = pytorch_reduction_args("mean", axis, keepdims, dim, keepdim)
    x = as_float(x)
    return Mean(normalize_axes(axis, x.ndim, "mean"), keepdims)(x)


MaxResult = collections.namedtuple("max", ["values", "indices"])
MinResult = collections.namedtuple("min", ["values", "indices"])


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Max over ``axis``; the gradient flows to the arg-max (shared among ties, as
    ``torch.amax``).

    With PyTorch's ``dim=`` (one axis): ``(values, indices)``, as ``torch.max(x, dim)``,
    the gradient going to the returned index alone.
    """
    if dim is not None:
        return _extreme_and_index(x, "max", axis, keepdims, dim, keepdim)
    if keepdim is not None:
        axis, keepdims = pytorch_reduction_args("max", axis, keepdims, dim, keepdim)
    return Max(_nonempty_axes(x, axis, "max"), keepdims)(x)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Min over ``axis``; as ``max`` (``dim=``: ``(values, indices)``, as ``torch.min``)."""
    if dim is not None:
        return _extreme_and_index(x, "min", axis, keepdims, dim, keepdim)
    if keepdim is not None:
        axis, keepdims = pytorch_reduction_args("min", axis, keepdims, dim, keepdim)
    return Min(_nonempty_axes(x, axis, "min"), keepdims)(x)


def _nonempty_axes(x, axis, op_name):
    axes = normalize_axes(axis, x.ndim, op_name)
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"{op_name}: cannot reduce over an empty axis (shape {x.shape}, axis {axis})")
    return axes


def _extreme_and_index(x, op_name, axis, keepdims, dim, keepdim):
    """PyTorch's ``torch.max(x, dim)`` / ``torch.min(x, dim)``: (values, indices) along
    one axis; the values are x at the indices, so the gradient goes to that one element."""
    axis, keepdims = pytorch_reduction_args(op_name, axis, keepdims, dim, keepdim)
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"{op_name}: dim= takes one dimension, as torch.{op_name}, got {axis}; "
                        f"for several pass axis= (the values only)")
    (axis,) = _nonempty_axes(x, axis, op_name)
    arg = argmax if op_name == "max" else argmin
    indices = arg(x, axis=axis, keepdims=True)                    # (..., 1, ...)
    values = take_along_axis(x, indices, axis)                    # (..., 1, ...)
    if not keepdims:
        values, indices = squeeze(values, axis), squeeze(indices, axis)
    result = MaxResult if op_name == "max" else MinResult
    return result(values, indices)


def var(x, axis=None, keepdims=False, ddof=None, *, dim=None, keepdim=None, correction=None,
        unbiased=None):
    """Variance over ``axis``: the sum of squared deviations divided by N - ``ddof``.

    ``ddof`` defaults to 0 (N, NumPy's default), but to 1 (N - 1, PyTorch's default)
    when called with PyTorch's ``dim=`` or ``keepdim=``; PyTorch's ``correction``
    (= ddof) and ``unbiased`` (True: 1, False: 0) are accepted too.
    """
    pytorch_call = dim is not None or keepdim is not None
    if pytorch_call:
        axis, keepdims = pytorch_reduction_args("var", axis, keepdims, dim, keepdim)
    ddof = _ddof(ddof, correction, unbiased, default=1 if pytorch_call else 0)
    x = as_float(x)
    return Var(normalize_axes(axis, x.ndim, "var"), keepdims, ddof)(x)


def _ddof(ddof, correction, unbiased, default):
    """The one of NumPy's ``ddof`` and PyTorch's ``correction``, ``unbiased`` that was given."""
    given = [(name, value) for name, value in
             (("ddof", ddof), ("correction", correction), ("unbiased", unbiased)) if value is not None]
    if len(given) > 1:
        (a, a_value), (b, b_value) = given[:2]
        raise TypeError(f"var: got both {a}={a_value!r} and {b}={b_value!r}; pass one of them")
    if not given:
        return default
    name, value = given[0]
    return int(bool(value)) if name == "unbiased" else value


def logsumexp(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """log(sum(exp(x))) over ``axis``, without overflow."""
    if dim is not None or keepdim is not None:
        axis, keepdims = pytorch_reduction_args("logsumexp", axis, keepdims, dim, keepdim)
    x = as_float(x)
    return LogSumExp(normalize_axes(axis, x.ndim, "logsumexp"), keepdims)(x)


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """The index of the max along ``axis`` (None: in the flattened tensor), as int64
    indices outside the graph; the first one where several tie (NumPy and PyTorch)."""
    if dim is not None or keepdim is not None:
        axis, keepdims = pytorch_reduction_args("argmax", axis, keepdims, dim, keepdim)
    return _arg_extreme(x, axis, keepdims, "argmax")


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """The index of the min along ``axis``; as ``argmax``."""
    if dim is not None or keepdim is not None:
        axis, keepdims = pytorch_reduction_args("argmin", axis, keepdims, dim, keepdim)
    return _arg_extreme(x, axis, keepdims, "argmin")


def _arg_extreme(x, axis, keepdims, op_name):
    x = as_tensor(x)
    if axis is not None:
        if isinstance(axis, (tuple, list)):
            raise TypeError(f"{op_name}: expected one axis (an int) or None, got {axis}")
        (axis,) = _nonempty_axes(x, axis, op_name)
    elif x.data.size == 0:
        raise ValueError(f"{op_name}: expected a non-empty tensor, got shape {x.shape}")
    return Tensor(getattr(x.data, op_name)(axis=axis, keepdims=keepdims))
