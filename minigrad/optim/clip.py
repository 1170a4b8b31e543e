"""Gradient clipping by the global norm (Pascanu et al., 2013, arXiv:1211.5063)."""
import math

from minigrad.backend import get_array_module

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm, eps=1e-6):
    """Scale all gradients in place so that their joint L2 norm is at most ``max_norm``.

        total = sqrt(sum_p ||g_p||^2);   g_p = g_p * min(1, max_norm / (total + eps))

    Returns the norm before clipping, as a Python float (one host sync per call).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    total = math.sqrt(float(sum(xp.sum(g.astype("float64") ** 2) for g in grads)))
    scale = max_norm / (total + eps)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total
