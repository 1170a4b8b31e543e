"""Dropout (Srivastava et al., 2014, JMLR 15): zero each element with probability p.

    y = x * m / (1 - p),   m_i ~ Bernoulli(1 - p)

The kept elements are scaled by 1 / (1 - p) ("inverted dropout") so that the
expected value of y is x and nothing changes at evaluation time.

The fused op is ``Dropout`` (called by ``dropout``); its oracle is
``dropout_composed`` at the end of this file, the same product from primitive ops
for a given mask, and tests/test_nn_ops.py holds the two equal.
"""
from minigrad.backend import backend_of
from minigrad.function import Function
from minigrad.ops._util import as_float
from minigrad.tensor import Tensor

__all__ = ["dropout", "dropout_mask", "keep_scale", "dropout_composed"]


class Dropout(Function):
    """y = x * mask * scale for a boolean keep-``mask`` and ``scale = 1 / (1 - p)``."""

    def __init__(self, scale):
        self.scale = scale

    def forward(self, x, mask):
        self.save_for_backward(mask)
        return x * mask * self.scale

    def backward(self, gy):
        mask, = self.saved
        # dy/dx = mask * scale; the mask is not differentiable
        return gy * mask * self.scale, None


def dropout_mask(x, p, shape=None):
    """A boolean keep-mask of x's shape (or ``shape``), True with probability 1 - p (the
    backend's rng, in x's float dtype; float32 draws for a float16 x: neither NumPy nor
    CuPy draws float16). The fused attention core (nn_attention.py) draws its mask on
    the weights here too, so that one seed gives it and its oracle the same mask."""
    backend = backend_of(x.data)
    dtype = "float32" if x.dtype == "float16" else x.dtype
    return backend.rng.random(x.shape if shape is None else shape, dtype=dtype) >= p


def keep_scale(p):
    """1 / (1 - p), the factor of the kept elements; 0 for p = 1, which drops everything."""
    return 0.0 if p == 1.0 else 1.0 / (1.0 - p)


def dropout(x, p=0.5, training=True):
    """Inverted dropout; the identity when not ``training`` or when p = 0. An integer
    x is made float32 in both cases, so that the mode never changes the dtype."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    x = as_float(x)
    if not training or p == 0.0:
        return x
    return Dropout(keep_scale(p))(x, Tensor(dropout_mask(x, p)))


def dropout_composed(x, mask, p):
    """x * mask / (1 - p) from primitive ops, for a given mask: the test oracle of
    ``Dropout`` / ``dropout`` above."""
    return x * Tensor(mask.astype(x.dtype)) * (1.0 / (1.0 - p))
