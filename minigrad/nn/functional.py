"""``minigrad.nn.functional``: the stateless functions the layers are built from,
under PyTorch's names (``import minigrad.nn.functional as F``).

Most are the ops of ``minigrad.ops`` (each a Function with its own backward);
the attention functions and ``mse_loss`` are compositions of them.
"""
import math

from minigrad.ops import (
    cross_entropy, dropout, embedding, gelu, layer_norm, log_softmax, matmul, relu,
    sigmoid, softmax, tanh,
)
from minigrad.nn.scaled_dot_product import attention_weights, scaled_dot_product_attention
from minigrad.ops._util import as_floats
from minigrad.ops.nn_linear import linear_fused

__all__ = ["relu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax", "cross_entropy",
           "mse_loss", "dropout", "layer_norm", "embedding", "linear",
           "scaled_dot_product_attention", "attention_weights"]

REDUCTIONS = ("mean", "sum", "none")


def linear(x, weight, bias=None):
    """y = x W^T + b.   x (..., in), W (out, in), b (out,) -> y (..., out).

    One op (``minigrad/ops/nn_linear.py::linear_fused``): leading axes flattened, so
    any batch shape is one matrix product; its composed form, the oracle, is
    ``linear_composed`` below.
    """
    _check_linear(x, weight)
    return linear_fused(x, weight, bias)


def linear_composed(x, weight, bias=None):
    """``linear`` from matmul, transpose and add: the test oracle of the fused op
    ``linear_fused`` (``minigrad/ops/nn_linear.py``, class ``Linear``)."""
    _check_linear(x, weight)
    lead = x.shape[:-1]
    y = matmul(x.reshape(math.prod(lead), x.shape[-1]), weight.T)   # (N, out)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, weight.shape[0])                # (..., out)


def _check_linear(x, weight):
    if x.shape[-1:] != weight.shape[1:] or weight.ndim != 2:
        raise ValueError(f"linear: expected input (..., {weight.shape[-1]}) for a weight of shape "
                         f"{weight.shape}, got {x.shape}")


def mse_loss(input, target, reduction="mean"):
    """The mean squared error, as ``torch.nn.functional.mse_loss``:

        loss = (1/N) sum_i (input_i - target_i)^2       (reduction="mean", N elements)

    ``reduction="sum"`` leaves out the 1/N, ``"none"`` returns every squared
    difference. input and target have one shape (PyTorch broadcasts two different
    shapes with a warning; here that is an error). Both may require grad; an
    integer one takes the other's float dtype.
    """
    check_reduction("mse_loss", reduction)
    input, target = as_floats(input, target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: expected input and target of one shape, got input of shape "
                         f"{input.shape} and target of shape {target.shape}")
    difference = input - target
    squared = difference * difference
    if reduction == "none":
        return squared
    return squared.sum() if reduction == "sum" else squared.mean()


def check_reduction(name, reduction):
    """Refuse a ``reduction`` other than "mean", "sum" and "none", naming ``name``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
