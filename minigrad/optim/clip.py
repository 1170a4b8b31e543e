"""Gradient clipping by the global norm (Pascanu et al., 2013, arXiv:1211.5063)."""
import math

from minigrad.backend import get_array_module
from minigrad.tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm, eps=1e-6):
    """Scale all gradients in place so that their joint L2 norm is at most ``max_norm``.

        total = sqrt(sum_p ||g_p||^2);   g_p = g_p * min(1, max_norm / (total + eps))

    Returns ``total``, the norm before clipping, as a 0-d float64 Tensor on the
    gradients' device (as PyTorch returns a tensor): nothing here reads a value back
    to the host, so on a GPU the step runs on without waiting. ``float(total)`` reads
    it when it is needed. ``max_norm=float("inf")`` measures the norm and clips nothing.
    A NaN or infinite gradient makes ``total`` NaN or infinite, which is how a training
    loop sees that a step diverged.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0, dtype="float64")
    xp = get_array_module(grads[0])
    total = xp.sqrt(sum(xp.sum(g.astype("float64") ** 2) for g in grads))     # () on the device
    if math.isinf(max_norm):
        return Tensor(total)
    # Always multiplied, by 1 when the norm is already small enough: deciding on the
    # host whether to clip would read ``total`` back, a synchronization every step.
    coefficient = xp.minimum(1.0, max_norm / (total + eps))                    # ()
    for g in grads:
        g *= coefficient.astype(g.dtype)
    return Tensor(total)
