"""minigrad: a from-scratch deep-learning framework on NumPy (CPU) or CuPy (GPU).

    import minigrad as mg
    x = mg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = mg.tanh(x @ x.T).sum()
    loss.backward()
    x.grad                                 # d loss / d x, a NumPy array here

Layers of the code, bottom up: ``backend`` (NumPy or CuPy), ``tensor`` and
``function`` (the graph) with ``autograd`` (its walk), ``ops`` (the
differentiable functions), ``gradient_check``; above them ``mg.nn`` (layers),
``mg.optim`` (optimizers) and ``mg.data`` (text to batches), imported on first use.
"""
import importlib as _importlib

from minigrad.backend import (
    BackendError, get_backend, manual_seed, set_backend, use_backend,
)
from minigrad.tensor import Tensor
from minigrad.function import Function, enable_grad, is_grad_enabled, no_grad
from minigrad.ops import (
    abs, add, argmax, argmin, broadcast_to, cat, clip, clone, concatenate, cross_entropy, div,
    dropout, embedding, exp, expand_dims, flatten, gelu, layer_norm, log, log_softmax, logsumexp,
    matmul, max, maximum, mean, min, minimum, mul, neg, pad, pow, relu, reshape, sigmoid, softmax,
    split, sqrt, squeeze, stack, sub, sum, swapaxes, take_along_axis, tanh, transpose, unsqueeze,
    var, where,
)
from minigrad.creation import (
    arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like,
)
from minigrad.gradient_check import GradcheckError, gradcheck

__version__ = "0.1.0"

_SUBPACKAGES = ("nn", "optim", "data")


def __getattr__(name):
    """``mg.nn``, ``mg.optim`` and ``mg.data``, imported on first use (as ``import
    torch`` gives ``torch.nn``), so that ``import minigrad`` stays quick for code
    that needs tensors only."""
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"minigrad.{name}")
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
