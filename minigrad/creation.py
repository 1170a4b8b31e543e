"""Making tensors on the default backend: zeros, ones, full, arange, rand, randn."""
from minigrad import backend as _backend
from minigrad.tensor import Tensor

__all__ = ["tensor", "zeros", "ones", "full", "arange", "rand", "randn",
           "zeros_like", "ones_like"]


def tensor(data, requires_grad=False, dtype=None):
    """``Tensor(data, ...)``, under PyTorch's lower-case name."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(*shape, dtype="float32", requires_grad=False):
    """A tensor of zeros on the default backend: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return Tensor(_xp().zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype="float32", requires_grad=False):
    """A tensor of ones on the default backend: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return Tensor(_xp().ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, value, dtype="float32", requires_grad=False):
    """A tensor filled with ``value`` on the default backend."""
    return Tensor(_xp().full(shape, value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(x, requires_grad=False):
    """Zeros of x's shape, dtype and backend."""
    xp = _backend.backend_of(x.data).xp
    return Tensor(xp.zeros_like(x.data), requires_grad=requires_grad)


def ones_like(x, requires_grad=False):
    """Ones of x's shape, dtype and backend."""
    xp = _backend.backend_of(x.data).xp
    return Tensor(xp.ones_like(x.data), requires_grad=requires_grad)


def arange(*args, dtype=None):
    """``numpy.arange`` on the default backend: int64 for integer arguments
    (positions, indices), float32 when any argument is a float."""
    if dtype is None:
        dtype = "float32" if any(isinstance(a, float) for a in args) else "int64"
    return Tensor(_xp().arange(*args, dtype=dtype))


def rand(*shape, dtype="float32", requires_grad=False):
    """Uniform samples in [0, 1) from the default backend's seeded generator."""
    data = _backend.current_backend().rng.random(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def randn(*shape, dtype="float32", requires_grad=False):
    """Standard normal samples from the default backend's seeded generator."""
    data = _backend.current_backend().rng.standard_normal(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def _xp():
    return _backend.current_backend().xp


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
