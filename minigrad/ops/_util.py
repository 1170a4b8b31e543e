"""Small helpers shared by the ops: axes (under NumPy's and PyTorch's names), undoing
broadcasting, dtype promotion."""
import operator

from minigrad.backend import backend_of
from minigrad.function import uniform_tensors
from minigrad.tensor import Tensor, as_tensor

__all__ = ["normalize_axes", "axis_from_dim", "pytorch_reduction_args", "sum_to", "reduced_shape",
           "drop_axes", "float_operands", "as_float", "as_floats", "sigmoid_array",
           "times_transposed", "transposed_copy"]


def normalize_axes(axis, ndim, op_name):
    """``axis`` (None, an int or a tuple of ints) as a sorted tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    normalized = []
    for a in axes:
        a = operator.index(a)                   # NumPy integers too, never floats
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{op_name}: axis {a} is out of range for a tensor of {ndim} dimensions"
            )
        normalized.append(a % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op_name}: repeated axis in {axis}")
    return tuple(sorted(normalized))


def axis_from_dim(op_name, axis, dim, default=None):
    """The axis of an op called with PyTorch's ``dim=`` (NumPy's ``axis=`` must be
    left at its ``default``: giving both is an error, not a silent choice)."""
    if axis != default:
        raise TypeError(f"{op_name}: got both axis={axis!r} and dim={dim!r}; pass one of them "
                        "(dim is PyTorch's name for axis)")
    return dim


def pytorch_reduction_args(op_name, axis, keepdims, dim, keepdim):
    """(axis, keepdims) of a reduction called with PyTorch's ``dim=`` or ``keepdim=``.

    The ops call this only when one of them is given, so that the common call pays
    for one comparison, not a function call.
    """
    if dim is not None:
        axis = axis_from_dim(op_name, axis, dim)
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{op_name}: got both keepdims={keepdims!r} and keepdim={keepdim!r}; pass "
                            "one of them (keepdim is PyTorch's name for keepdims)")
        keepdims = bool(keepdim)
    return axis, keepdims


def reduced_shape(shape, axes):
    """The shape of a reduction over ``axes`` with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def drop_axes(y, axes):
    """A keepdims=True reduction result ``y`` without its reduced axes."""
    return y.reshape(tuple(n for i, n in enumerate(y.shape) if i not in axes))


def sum_to(gx, shape):
    """Sum ``gx`` over the axes that broadcasting added or stretched, giving ``shape``.

    Broadcasting copies an input along those axes in the forward pass, so in the
    backward pass the copies' gradients add up: d/dx sum_j f(x) = sum_j f'(x).
    """
    if gx.shape == shape:
        return gx
    lead = gx.ndim - len(shape)                  # axes broadcasting put in front
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and gx.shape[lead + i] != 1)
    gx = gx.sum(axis=tuple(range(lead)) + stretched, keepdims=True)
    return gx.reshape(shape)


def float_operands(*values):
    """The operands of one op as Tensors, integers cast to the float operand's dtype.

    NumPy would turn int64 with float32 into float64; minigrad gives float32, as
    PyTorch does. (Two different float dtypes are refused by ``Function``.)
    Python and NumPy numbers take the dtype of a float tensor beside them.
    """
    if uniform_tensors(values):
        return values                            # the common case: nothing to convert
    like = next((v for v in values if isinstance(v, Tensor)), None)
    tensors = [as_tensor(v, like=like) for v in values]
    float_dtype = next((t.dtype for t in tensors if t.dtype.kind == "f"), None)
    if float_dtype is None:
        return tensors
    return [t if t.dtype.kind == "f" else Tensor(t.data.astype(float_dtype)) for t in tensors]


def as_float(x):
    """x as a Tensor, an integer or boolean one cast to float32 (for exp, mean, softmax, ...)."""
    x = as_tensor(x)
    return x if x.dtype.kind == "f" else Tensor(x.data.astype("float32"))


def as_floats(*values):
    """The operands of an op that computes in floating point (linear, layer norm,
    attention, true division, ...): integers take the float operand's dtype
    (``float_operands``), and become float32 when no operand is float (``as_float``).
    NumPy would give float64 for int64 @ float32, and for int64 / int64."""
    if uniform_tensors(values) and values[0].data.dtype.kind == "f":
        return values                            # the common case: nothing to convert
    tensors = float_operands(*values)
    if tensors[0].dtype.kind == "f":             # then all are: float_operands cast the rest
        return tensors
    return [as_float(t) for t in tensors]


def sigmoid_array(xp, x):
    """1 / (1 + e^-x) on a backend array, written through tanh: stable for large |x|
    in both directions, one fused-friendly expression (the fused recurrent ops)."""
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def times_transposed(weight, x):
    """x weight^T (B, out) for a small batch B, computed as (weight x^T)^T: the
    recurrent products of the fused RNN ops, one per time step.

    The same products (BLAS may sum them in another order); but BLAS runs a product
    with the long side first about 1.5x faster when B is small (measured for
    (32, 512) @ (512, 2048): 600 -> 387 us, OpenBLAS on 2 cores). The result is a
    transposed (column-major) view; adding it to a row-major array gives a
    row-major one again.
    """
    return (weight @ x.T).T                                                  # (B, out)


TRANSPOSE_TILE = 16          # rows of the source per tile: each row of a tile's copy is 64 bytes


def transposed_copy(a):
    """a^T as a new row-major array, for a 2-D ``a`` (the fused RNN ops' W_hh^T, read by
    every backward step's product).

    NumPy copies a transposed array by walking the source with a stride of a whole row
    for every element it writes: 3.0 ms for a (2048, 512) float32 matrix. Copied
    in tiles of 16 source rows, each tile's rows are read once from cache and each
    row written is 64 bytes, one cache line: 0.8 ms. On a backend without a
    ``cache_block`` (a GPU) one whole copy is one kernel, and that is what it does.
    """
    backend = backend_of(a)
    xp = backend.xp
    if backend.cache_block is None:
        return xp.ascontiguousarray(a.T)
    rows, columns = a.shape
    a_T = xp.empty((columns, rows), dtype=a.dtype)                          # (columns, rows)
    for start in range(0, rows, TRANSPOSE_TILE):
        a_T[:, start:start + TRANSPOSE_TILE] = a[start:start + TRANSPOSE_TILE].T
    return a_T
