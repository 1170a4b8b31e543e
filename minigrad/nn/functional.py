"""``minigrad.nn.functional``: the stateless functions the layers are built from,
under PyTorch's names (``import minigrad.nn.functional as F``).

Most are the ops of ``minigrad.ops`` (each a Function with its own backward);
the attention functions are compositions of them.
"""
import math

from minigrad.ops import (
    cross_entropy, dropout, embedding, gelu, layer_norm, log_softmax, matmul, relu,
    sigmoid, softmax, tanh,
)
from minigrad.nn.scaled_dot_product import attention_weights, scaled_dot_product_attention
from minigrad.ops.nn_linear import linear_fused

__all__ = ["relu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax", "cross_entropy",
           "dropout", "layer_norm", "embedding", "linear", "scaled_dot_product_attention",
           "attention_weights"]


def linear(x, weight, bias=None):
    """y = x W^T + b.   x (..., in), W (out, in), b (out,) -> y (..., out).

    One op (``ops/nn_linear.py``): leading axes flattened, so any batch shape is
    one matrix product; its composed form is ``linear_composed``.
    """
    _check_linear(x, weight)
    return linear_fused(x, weight, bias)


def linear_composed(x, weight, bias=None):
    """``linear`` from matmul, transpose and add: the test oracle of the fused op."""
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
