"""Parameter initialization, in place, with PyTorch's default distributions.

Each function fills ``tensor.data`` from the random generator of the tensor's own
backend (seeded by ``minigrad.manual_seed``) and returns the tensor.

    fan_in, fan_out   for a weight (out, in): in and out features
    uniform_(a, b)                U(a, b)
    normal_(mean, std)            N(mean, std^2)
    xavier_uniform_(gain)         U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))
                                  (Glorot & Bengio, 2010)
    kaiming_uniform_(a)           U(-b, b),  b = sqrt(6 / ((1 + a^2) fan_in))
                                  (He et al., 2015); with a = sqrt(5), as torch's
                                  Linear uses, b = 1 / sqrt(fan_in)
"""
import math

from minigrad.backend import backend_of

__all__ = ["uniform_", "normal_", "zeros_", "ones_", "constant_", "xavier_uniform_",
           "kaiming_uniform_", "fan_in_and_fan_out"]


def fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *receptive field)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of 2 or more dims, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def uniform_(tensor, a=0.0, b=1.0):
    rng = backend_of(tensor.data).rng
    tensor.data[...] = a + (b - a) * rng.random(tensor.shape, dtype=tensor.dtype)
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    rng = backend_of(tensor.data).rng
    tensor.data[...] = mean + std * rng.standard_normal(tensor.shape, dtype=tensor.dtype)
    return tensor


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0):
    if tensor.size == 0:                  # nothing to draw (and a zero fan), as PyTorch
        return tensor
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def kaiming_uniform_(tensor, a=0.0):
    if tensor.size == 0:                  # nothing to draw (and a zero fan), as PyTorch
        return tensor
    fan_in, _ = fan_in_and_fan_out(tensor)
    bound = math.sqrt(6.0 / ((1.0 + a * a) * fan_in))
    return uniform_(tensor, -bound, bound)
