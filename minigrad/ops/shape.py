"""Shape ops: they move, copy or select elements and compute nothing.

Their backward passes put each gradient element back where its forward element
came from: reshape back, transpose by the inverse permutation, scatter into the
selected positions, split what was joined and join what was split.

NumPy's names and arguments, with PyTorch's beside them: ``dim=`` for ``axis=``,
``cat`` for ``concatenate``, ``unsqueeze``, ``flatten``, ``clone``.
"""
import itertools
import math
import numbers

from minigrad.backend import BackendError, asarray, backend_by_name, backend_of, get_array_module
from minigrad.function import Function
from minigrad.ops._util import axis_from_dim, float_operands, normalize_axes, sum_to
from minigrad.tensor import Tensor

__all__ = [
    "reshape", "transpose", "swapaxes", "getitem", "take_along_axis", "concatenate", "cat",
    "stack", "split", "broadcast_to", "expand_dims", "unsqueeze", "squeeze", "flatten", "pad",
    "clone", "to_backend",
]


class Reshape(Function):
    """y = x with a new shape (same elements, row-major order)."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        # dy/dx = identity on the elements: the gradient takes x's shape back
        return gy.reshape(self.x_shape)


class Transpose(Function):
    """y = x with its axes permuted: y.shape[i] = x.shape[axes[i]]."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        # dy/dx permutes: gx is gy with the inverse permutation (axis axes[i] of x is axis i of y)
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return gy.transpose(inverse)


class GetItem(Function):
    """y = x[index]: basic slicing, integer arrays and boolean masks, as NumPy.

    An integer array may name one element several times (an embedding lookup
    does); its gradient is then the sum over the repeats, so backward scatters
    with an add (``scatter_add``) rather than an assignment, which keeps only one.
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.x_shape, dtype=self.x_dtype)
        # dy/dx = 1 from each selected x element to its y element: gx[index] += gy
        if _is_basic(self.index):
            gx[self.index] = gy                  # each x element selected at most once
        else:
            backend_of(gy).scatter_add(gx, self.index, gy)
        return gx


class Concatenate(Function):
    """y = [x_1, x_2, ...] joined along ``axis``."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        boundaries = list(itertools.accumulate(self.sizes[:-1]))
        # dy/dx_k = identity on x_k's block: cut gy where the inputs were joined
        return tuple(xp.split(gy, boundaries, axis=self.axis))


class Stack(Function):
    """y = [x_1, x_2, ...] stacked along a new ``axis``."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return get_array_module(xs[0]).stack(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        # dy/dx_k = identity on slice k of the new axis: gx_k = gy[..., k, ...]
        return tuple(xp.moveaxis(gy, self.axis, 0))


class Split(Function):
    """(y_1, y_2, ...) = x cut along ``axis`` (NumPy's ``indices_or_sections``)."""

    def __init__(self, indices_or_sections, axis):
        self.indices_or_sections, self.axis = indices_or_sections, axis

    def forward(self, x):
        return tuple(get_array_module(x).split(x, self.indices_or_sections, axis=self.axis))

    def backward(self, *gys):
        # dy_k/dx = identity on y_k's block: join the pieces' gradients
        return get_array_module(gys[0]).concatenate(gys, axis=self.axis)


class BroadcastTo(Function):
    """y = x repeated along new and size-1 axes to ``shape``."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        # each x element was copied to many y elements: their gradients add up
        return sum_to(gy, self.x_shape)


class Pad(Function):
    """y = x with ``pad_width[i] = (before, after)`` constant elements around axis i."""

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        return get_array_module(x).pad(x, self.pad_width, mode="constant",
                                       constant_values=self.value)

    def backward(self, gy):
        # the padding is constant, so only the original block gets a gradient
        inner = tuple(slice(before, gy.shape[i] - after)
                      for i, (before, after) in enumerate(self.pad_width))
        return gy[inner]


class Clone(Function):
    """y = a copy of x in new memory (PyTorch's ``clone``)."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        # dy/dx = identity
        return gy


class ToBackend(Function):
    """y = x copied to another backend; the gradient is copied back."""

    def __init__(self, target):
        self.target = backend_by_name(target)

    def forward(self, x):
        self.source = backend_of(x)
        return self.target.from_numpy(self.source.to_numpy(x))

    def backward(self, gy):
        # dy/dx = identity: the gradient travels back to x's backend
        return self.source.from_numpy(self.target.to_numpy(gy))


# --------------------------------------------------------------------------- #
# Index helpers
# --------------------------------------------------------------------------- #

def _is_basic(index):
    """True for an index of ints, slices, None and Ellipsis only (no arrays)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _index_arrays(index, x):
    """The index with Tensors and lists replaced by arrays on x's backend."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for part in parts:
        if isinstance(part, numbers.Integral) and not isinstance(part, bool):
            part = int(part)                     # a NumPy integer indexes like an int
        elif isinstance(part, Tensor):
            part = part.data
        elif isinstance(part, list):
            part = asarray(part, dtype="int64" if len(part) == 0 else None, backend=x.backend)
        if not (part is None or part is Ellipsis or isinstance(part, (int, slice))):
            if backend_of(part).name != x.backend:
                raise BackendError(
                    f"getitem: index array on backend {backend_of(part).name!r}, "
                    f"tensor on {x.backend!r}"
                )
            if part.dtype.kind not in "iub":
                raise IndexError(f"getitem: index arrays must be integer or boolean, got {part.dtype}")
        converted.append(part)
    arrays = [p for p in converted if hasattr(p, "dtype")]
    if len(arrays) > 1 and any(p.dtype.kind == "b" for p in arrays):
        raise IndexError(
            "getitem: a boolean mask must be the only array in an index (CuPy supports "
            "no other form); index with the mask's nonzero() positions instead"
        )
    return tuple(converted) if isinstance(index, tuple) else converted[0]


# --------------------------------------------------------------------------- #
# The functions users call
# --------------------------------------------------------------------------- #

def reshape(x, shape):
    """x with a new shape; one dimension may be -1."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    known, size = 1, x.data.size
    for n in shape:
        known *= n if n != -1 else 1
    if shape.count(-1) > 1 or (-1 not in shape and known != size) or \
            (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into {shape}")
    return Reshape(shape)(x)


def transpose(x, axes=None):
    """x with its axes permuted (default: reversed), as ``numpy.transpose``."""
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(a % x.ndim if -x.ndim <= a < x.ndim else a for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of a {x.ndim}-D tensor's axes")
    return Transpose(axes)(x)


def swapaxes(x, axis1, axis2):
    """x with two axes exchanged."""
    axes = list(range(x.ndim))
    (a,), (b,) = normalize_axes(axis1, x.ndim, "swapaxes"), normalize_axes(axis2, x.ndim, "swapaxes")
    axes[a], axes[b] = axes[b], axes[a]
    return Transpose(tuple(axes))(x)


def getitem(x, index):
    """x[index], as NumPy indexes."""
    return GetItem(_index_arrays(index, x))(x)


def take_along_axis(x, indices, axis):
    """y[..., j, ...] = x[..., indices[..., j, ...], ...] along ``axis``, as
    ``numpy.take_along_axis`` (PyTorch's ``gather``). ``indices``: an integer tensor
    of x's shape except along ``axis``. The gradient goes to the elements taken."""
    if indices.ndim != x.ndim or indices.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: expected integer indices with {x.ndim} axes, like x's "
                        f"{x.shape}, got dtype {indices.dtype} and shape {indices.shape}")
    xp = get_array_module(x.data)
    index = []
    for i, n in enumerate(x.shape):
        if i == axis:
            index.append(indices.data)
        else:                              # arange(n) along axis i, broadcast over the others
            index.append(xp.arange(n).reshape(tuple(n if j == i else 1 for j in range(x.ndim))))
    return GetItem(tuple(index))(x)


def concatenate(tensors, axis=0, *, dim=None):
    """The tensors joined along an existing axis (``cat``, PyTorch's name)."""
    if dim is not None:
        axis = axis_from_dim("concatenate", axis, dim, default=0)
    tensors = _tensor_list(tensors, "concatenate")
    first = tensors[0]
    (axis,) = normalize_axes(axis, first.ndim, "concatenate")
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(m != n for i, (m, n) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(
                f"concatenate: shapes {first.shape} and {t.shape} differ outside axis {axis}"
            )
    return Concatenate(axis)(*tensors)


cat = concatenate


def stack(tensors, axis=0, *, dim=None):
    """The tensors, all of one shape, stacked along a new axis."""
    if dim is not None:
        axis = axis_from_dim("stack", axis, dim, default=0)
    tensors = _tensor_list(tensors, "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: expected tensors of one shape, got {sorted(shapes)}")
    (axis,) = normalize_axes(axis, tensors[0].ndim + 1, "stack")
    return Stack(axis)(*tensors)


def split(x, indices_or_sections, axis=0):
    """x cut along ``axis`` into equal sections or at the given indices (a tuple of tensors)."""
    (axis,) = normalize_axes(axis, x.ndim, "split")
    if isinstance(indices_or_sections, numbers.Integral):
        indices_or_sections = int(indices_or_sections)
    if isinstance(indices_or_sections, int) and (
            indices_or_sections <= 0 or x.shape[axis] % indices_or_sections):
        raise ValueError(
            f"split: axis {axis} of size {x.shape[axis]} does not split into "
            f"{indices_or_sections} equal sections"
        )
    if not isinstance(indices_or_sections, int) and list(indices_or_sections) != sorted(indices_or_sections):
        raise ValueError(f"split: expected increasing split indices, got {list(indices_or_sections)}")
    return Split(indices_or_sections, axis)(x)


def broadcast_to(x, shape):
    """x broadcast to ``shape`` (NumPy's rules)."""
    shape = tuple(shape)
    if len(shape) < x.ndim or any(
            m != n and m != 1 for m, n in zip(x.shape[::-1], shape[::-1])):
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape)(x)


def expand_dims(x, axis):
    """x with new axes of size 1 at ``axis`` (an int or a tuple, as NumPy)."""
    n_new = 1 if isinstance(axis, numbers.Integral) else len(axis)
    axes = normalize_axes(axis, x.ndim + n_new, "expand_dims")
    sizes = iter(x.shape)
    return Reshape(tuple(1 if i in axes else next(sizes) for i in range(x.ndim + n_new)))(x)


def unsqueeze(x, dim):
    """x with a new axis of size 1 at ``dim`` (PyTorch's name for ``expand_dims`` of one axis)."""
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"unsqueeze: expected one dim (an int), got {dim!r}; "
                        "expand_dims takes a tuple")
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor of {x.ndim} "
                         f"dimensions (expected {-x.ndim - 1} to {x.ndim})")
    return expand_dims(x, int(dim))


def flatten(x, start_dim=0, end_dim=-1):
    """x with axes ``start_dim`` to ``end_dim`` (both included) merged into one, as
    ``torch.flatten``; all of them by default, a 0-d tensor giving shape (1,)."""
    if x.ndim == 0:
        if start_dim not in (0, -1) or end_dim not in (0, -1):
            raise ValueError(f"flatten: a 0-d tensor takes start_dim and end_dim 0 or -1, "
                             f"got {start_dim} and {end_dim}")
        return Reshape((1,))(x)
    (start,), (end,) = normalize_axes(start_dim, x.ndim, "flatten"), normalize_axes(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for a tensor of shape {x.shape}")
    merged = math.prod(x.shape[start:end + 1])
    return Reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])(x)


def squeeze(x, axis=None, *, dim=None):
    """x without its size-1 axes, or only those in ``axis`` (NumPy: each must have
    size 1) or in ``dim`` (PyTorch: an axis of another size is left as it is)."""
    if dim is not None:
        axis = axis_from_dim("squeeze", axis, dim)
        axes = tuple(a for a in normalize_axes(axis, x.ndim, "squeeze") if x.shape[a] == 1)
    elif axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        wrong = [a for a in axes if x.shape[a] != 1]
        if wrong:
            raise ValueError(f"squeeze: axis {wrong[0]} of shape {x.shape} has size {x.shape[wrong[0]]}, not 1")
    return Reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))(x)


def pad(x, pad_width, constant_values=0):
    """x padded with a constant; ``pad_width`` as in ``numpy.pad``: an int, a
    (before, after) pair for every axis, or one pair per axis."""
    return Pad(_pad_pairs(pad_width, x.ndim), constant_values)(x)


def clone(x):
    """A copy of x in new memory; differentiable (PyTorch's ``clone``)."""
    return Clone()(x)


def to_backend(x, name):
    """x copied to backend ``name``; differentiable."""
    return ToBackend(name)(x)


def _pad_pairs(pad_width, ndim):
    """NumPy's ``pad_width`` forms as one (before, after) pair per axis."""
    if isinstance(pad_width, int):
        pairs = [(pad_width, pad_width)] * ndim
    elif len(pad_width) == 2 and all(isinstance(p, int) for p in pad_width):
        pairs = [tuple(pad_width)] * ndim
    elif len(pad_width) == 1:
        pairs = [tuple(pad_width[0]) if len(pad_width[0]) == 2 else (pad_width[0][0],) * 2] * ndim
    else:
        pairs = [tuple(p) for p in pad_width]
    if len(pairs) != ndim or any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ValueError(
            f"pad: expected pad_width of {ndim} non-negative (before, after) pairs, got {pad_width}"
        )
    return tuple(pairs)


def _tensor_list(tensors, op_name):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op_name}: expected at least one tensor, got none")
    return float_operands(*tensors)
