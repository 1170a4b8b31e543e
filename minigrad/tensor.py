"""``Tensor``: a backend array, its gradient, and the op that made it.

    x = mg.Tensor([[1.0, 2.0]], requires_grad=True)   # float32 on the default backend
    y = (x * x).sum()
    y.backward()                                       # x.grad == 2 * x

The arithmetic lives in ``minigrad/ops``; the methods here only forward to it,
with NumPy's names and arguments (``axis``, ``keepdims``).
"""
import numbers

from minigrad import backend as _backend

__all__ = ["Tensor", "as_tensor"]


class Tensor:
    """A node of the graph: ``data`` (NumPy or CuPy array) and ``grad`` (same shape).

    Args:
        data:          an array (keeps its dtype and backend, and is used as it is,
                       not copied, as ``torch.from_numpy``), or Python numbers (floats
                       become float32, ints int64) placed on the default backend.
        requires_grad: whether ``backward()`` should compute ``grad`` for it.
        dtype:         a dtype to convert to.

    Attributes:
        creator: the ``Function`` call that produced this tensor (None for a leaf).
    """

    __array_ufunc__ = None        # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _backend.asarray(data, dtype=dtype, backend=_backend_name(data))
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
        return self.data.size

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
        """A copy on backend ``target`` ("numpy" or "cupy"), or in dtype ``target``.

        Both are differentiable: the gradient travels back to this tensor's backend
        and dtype.
        """
        if isinstance(target, str) and target in _backend.backend_names():
            return ops.to_backend(self, target)
        return ops.astype(self, target)

    def astype(self, dtype):
        """A copy converted to ``dtype`` (differentiable between float dtypes)."""
        return ops.astype(self, dtype)

    def double(self):
        return self.astype("float64")

    def float(self):
        return self.astype("float32")

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

    # -- methods (NumPy's names) ---------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return ops.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.transpose(self, axes or None)

    permute = transpose

    @property
    def T(self):
        return ops.transpose(self, None)

    def swapaxes(self, axis1, axis2):
        return ops.swapaxes(self, axis1, axis2)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

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
