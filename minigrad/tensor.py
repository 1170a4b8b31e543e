"""``Tensor``: a backend array, its gradient, and the op that made it.

    x = mg.Tensor([[1.0, 2.0]], requires_grad=True)   # float32 on the default backend
    y = (x * x).sum()
    y.backward()                                       # x.grad == 2 * x

The arithmetic lives in ``minigrad/ops``; the methods here only forward to it,
with NumPy's names and arguments (``axis``, ``keepdims``) and PyTorch's beside them
(``dim``, ``keepdim``, ``x.size()``, ``x.view``, ``x.unsqueeze``, ``x.flatten``, ...).
Where the two differ, the spelling chooses: ``x.max(axis=1)`` is NumPy's values,
``x.max(dim=1)`` PyTorch's (values, indices); positional arguments are NumPy's.
"""
import numbers

from minigrad import backend as _backend

__all__ = ["Tensor", "as_tensor"]


class Tensor:
    """``data`` (NumPy or CuPy array), ``grad`` (same shape), and where it came from.

    Args:
        data:          an array (keeps its dtype and backend, and is used as it is,
                       not copied, as ``torch.from_numpy``), or Python numbers (floats
                       become float32, ints int64) placed on the default backend.
                       Numbers only: bool, integer or float (not strings, objects, None).
        requires_grad: whether ``backward()`` should compute ``grad`` for it.
        dtype:         a dtype to convert to.

    Attributes:
        creator:      the ``Function`` call that produced this tensor (None for a
                      leaf); PyTorch's ``grad_fn``.
        output_index: which of that call's outputs this tensor is (PyTorch's
                      ``output_nr``). The graph reaches a tensor through this pair,
                      never through the tensor itself (minigrad/function.py), so
                      the graph keeps no tensor's data alive.
    """

    __array_ufunc__ = None        # numpy_array + tensor calls Tensor.__radd__
    output_index = 0              # set by Function.__call__ on each output it records

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if data is None:
            raise TypeError(f"Tensor: {_NUMBERS}; got None")
        self.data = _backend.asarray(data, dtype=dtype, backend=_backend_name(data))
        if self.data.dtype.kind not in "biuf":
            kind = _KINDS.get(self.data.dtype.kind, "")
            raise TypeError(f"Tensor: {_NUMBERS}; got dtype {self.data.dtype}{kind}")
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.creator = None

    @classmethod
    def _from_op(cls, data, requires_grad):
        """The output of an op: ``data`` is already a backend array of the right dtype."""
        if data.ndim == 0 and _backend_name(data) is None:   # NumPy reductions give scalars
            data = _backend.asarray(data, backend="numpy")
        tensor = cls.__new__(cls)
        tensor.data, tensor.requires_grad, tensor.grad, tensor.creator = data, requires_grad, None, None
        return tensor

    # -- what it is -----------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        """The number of elements, as NumPy's ``ndarray.size``. Called, the shape, as
        PyTorch's ``x.size()``, or one dimension of it: ``x.size(1)``."""
        return _ElementCount(self.data.size, self.data.shape)

    def numel(self):
        """The number of elements (PyTorch's name for ``size``)."""
        return self.data.size

    def dim(self):
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self.data.ndim

    @property
    def backend(self):
        """The name of the backend that holds ``data``: "numpy" or "cupy"."""
        return _backend.backend_of(self.data).name

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() on .data, or compare .item()"
            )
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a minigrad Tensor does not turn into a NumPy array implicitly "
            "(its data may live on a GPU): call .numpy() for a NumPy copy"
        )

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = str(self.numpy()).replace("\n", "\n       ")
        return f"Tensor({body}, dtype={self.dtype}, backend={self.backend}{grad})"

    # -- leaving the graph and the device ---------------------------------------
    def numpy(self):
        """A NumPy copy of ``data``, from any backend."""
        return _backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor of one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self):
        """A new leaf sharing ``data``, cut from the graph."""
        return Tensor(self.data)

    def to(self, target):
        """A copy on backend ``target`` ("numpy" or "cupy"; PyTorch's "cpu" and "cuda"
        name the same two), or in dtype ``target``.

        Both are differentiable: the gradient travels back to this tensor's backend
        and dtype.
        """
        if isinstance(target, str) and target in _backend.backend_names():
            return ops.to_backend(self, target)
        if not _backend.is_dtype(target):
            raise TypeError(f"to: expected a backend {_backend.backend_names()} or a dtype, "
                            f"got {target!r}")
        return ops.astype(self, target)

    def cpu(self):
        """A copy on the NumPy backend (PyTorch's ``x.cpu()``)."""
        return self.to("cpu")

    def cuda(self):
        """A copy on the CuPy backend (PyTorch's ``x.cuda()``)."""
        return self.to("cuda")

    def astype(self, dtype):
        """A copy converted to ``dtype`` (differentiable between float dtypes)."""
        return ops.astype(self, dtype)

    def double(self):
        return self.astype("float64")

    def float(self):
        return self.astype("float32")

    def long(self):
        """int64 (indices), outside the graph."""
        return self.astype("int64")

    def clone(self):
        """A copy in new memory; differentiable."""
        return ops.clone(self)

    # -- autograd -------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to every leaf that requires grad.

        Args:
            grad: dL/d(self), of this tensor's shape. May be omitted only for a
                  tensor of one element (a loss), where it is 1.
            retain_graph: keep the graph's buffers for another backward.
        """
        from minigrad.autograd import backward
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "ops that made it had requires_grad=True (or they ran under no_grad())"
            )
        xp = _backend.backend_of(self.data).xp
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient works only for a one-element "
                    f"tensor (a loss), got shape {self.shape}; pass grad= of that shape"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if _backend_name(grad) != self.backend:
                raise _backend.BackendError(
                    f"backward(): grad is on backend {_backend_name(grad)!r}, "
                    f"the tensor on {self.backend!r}"
                )
            if grad.shape != self.shape or grad.dtype != self.dtype:
                raise ValueError(
                    f"backward(): expected grad of shape {self.shape} and dtype "
                    f"{self.dtype}, got shape {grad.shape} and dtype {grad.dtype}"
                )
        backward([self], [grad], retain_graph=retain_graph)

    # -- operators (NumPy's) -----------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __abs__(self):
        return ops.abs(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # Comparisons give boolean tensors, outside the graph (they have no gradient).
    def __lt__(self, other):
        return _compare(self, other, "less")

    def __le__(self, other):
        return _compare(self, other, "less_equal")

    def __gt__(self, other):
        return _compare(self, other, "greater")

    def __ge__(self, other):
        return _compare(self, other, "greater_equal")

    def __eq__(self, other):
        return _compare(self, other, "equal")

    def __ne__(self, other):
        return _compare(self, other, "not_equal")

    __hash__ = object.__hash__    # tensors are hashed by identity, as in PyTorch

    # -- methods (NumPy's names, with PyTorch's dim= and keepdim= beside them) --------
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The max (``dim=``: PyTorch's ``(values, indices)``; see ``minigrad.max``)."""
        return ops.max(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The min (``dim=``: PyTorch's ``(values, indices)``; see ``minigrad.min``)."""
        return ops.min(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def var(self, axis=None, keepdims=False, ddof=None, *, dim=None, keepdim=None,
            correction=None, unbiased=None):
        """The variance: divided by N, or by N - 1 with ``dim=`` (see ``minigrad.var``)."""
        return ops.var(self, axis, keepdims, ddof, dim=dim, keepdim=keepdim,
                       correction=correction, unbiased=unbiased)

    def logsumexp(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def softmax(self, axis=-1, *, dim=None):
        return ops.softmax(self, axis, dim=dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.log_softmax(self, axis, dim=dim)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """int64 indices of the max (of the flattened tensor when no axis is given)."""
        return ops.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def view(self, *shape):
        """PyTorch's name for ``reshape`` (which here never needs a contiguous tensor)."""
        return self.reshape(*shape)

    def flatten(self, start_dim=0, end_dim=-1):
        """Axes ``start_dim`` to ``end_dim`` merged into one (all: a 1-D tensor)."""
        return ops.flatten(self, start_dim, end_dim)

    def transpose(self, *axes, dim0=None, dim1=None):
        """NumPy's permutation of all axes (``x.transpose()``, ``x.transpose(2, 0, 1)``,
        ``x.transpose((1, 0))``), or PyTorch's swap of two (``x.transpose(1, 2)`` of a
        tensor of other than two axes, ``x.transpose(dim0=0, dim1=1)``).

        ``x.transpose(0, 1)`` of a 2-D tensor is refused: NumPy leaves the tensor as
        it is, PyTorch transposes it.
        """
        if dim0 is not None or dim1 is not None:
            if axes or dim0 is None or dim1 is None:
                raise TypeError(f"transpose: expected either axes or both dim0 and dim1, got axes "
                                f"{axes}, dim0={dim0!r}, dim1={dim1!r}")
            return ops.swapaxes(self, dim0, dim1)
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            return ops.transpose(self, tuple(axes[0]))
        if len(axes) == 2 and self.ndim != 2:
            return ops.swapaxes(self, *axes)                  # PyTorch's transpose(dim0, dim1)
        if len(axes) == 2 and axes[0] in (0, -2) and axes[1] in (1, -1):
            raise ValueError(
                "transpose(0, 1) of a 2-D tensor is ambiguous: NumPy keeps the axes as they "
                "are, PyTorch swaps them; write x.T or x.swapaxes(0, 1) to transpose, "
                "x.transpose((0, 1)) to keep them"
            )
        return ops.transpose(self, axes or None)

    def permute(self, *dims):
        """The axes in the order ``dims`` (``x.permute(2, 0, 1)``), as NumPy's transpose."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return ops.transpose(self, dims)

    @property
    def T(self):
        return ops.transpose(self, None)

    def swapaxes(self, axis1, axis2):
        return ops.swapaxes(self, axis1, axis2)

    def squeeze(self, axis=None, *, dim=None):
        """Size-1 axes removed (``dim=``: PyTorch's, leaving an axis of another size)."""
        return ops.squeeze(self, axis, dim=dim)

    def unsqueeze(self, dim):
        """A new axis of size 1 at ``dim``."""
        return ops.unsqueeze(self, dim)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)


_NUMBERS = ("expected numbers (bool, integer or float), nested lists of them, or an array "
            "of bool, integer or float dtype")
_KINDS = {"U": " (strings)", "S": " (bytes)", "O": " (Python objects)", "c": " (complex numbers)",
          "M": " (dates and times)", "m": " (time spans)", "V": " (raw records)"}


class _ElementCount(int):
    """``Tensor.size``: an int, the number of elements (NumPy's ``ndarray.size``),
    that called gives the shape or one of its dimensions (PyTorch's ``x.size()``)."""

    def __new__(cls, count, shape):
        self = super().__new__(cls, count)
        self.shape = shape
        return self

    def __call__(self, dim=None):
        if dim is None:
            return self.shape
        ndim = len(self.shape)
        if not -ndim <= dim < ndim:
            raise IndexError(f"size: dim {dim} is out of range for a tensor of {ndim} dimensions")
        return self.shape[dim]


def as_tensor(value, like=None):
    """``value`` as a Tensor; Python numbers go to the backend of ``like``.

    ``x * 0.5`` must stay float32 when x is float32, so a Python or NumPy float
    takes the dtype of a float ``like``; integers stay int64 (indices, targets),
    and the ops that mix them with floats cast them. An array keeps its own backend: a NumPy array next
    to a CuPy tensor is an error for the op to report, never an implicit copy.
    """
    if isinstance(value, Tensor):
        return value
    if like is None or _backend_name(value) is not None:
        return Tensor(value)
    dtype = None
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
            and like.dtype.kind == "f":
        dtype = like.dtype                       # x * 0.5 stays float32 for float32 x
    return Tensor(_backend.asarray(value, dtype=dtype, backend=like.backend))


def _backend_name(data):
    try:
        return _backend.backend_of(data).name
    except TypeError:
        return None


def _compare(x, other, name):
    other = other.data if isinstance(other, Tensor) else other
    if _backend_name(other) not in (None, x.backend):
        raise _backend.BackendError(
            f"{name}: tensors on backends {x.backend!r} and {_backend_name(other)!r}"
        )
    xp = _backend.backend_of(x.data).xp
    return Tensor(getattr(xp, name)(x.data, other))


# The ops need Tensor defined, so they are imported last.
from minigrad import ops as ops  # noqa: E402
