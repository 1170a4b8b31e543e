"""Adam (Kingma & Ba, 2015, arXiv:1412.6980) and AdamW (Loshchilov & Hutter, 2019,
arXiv:1711.05101), in PyTorch's form.

    m = beta1 m + (1 - beta1) g                    first moment
    v = beta2 v + (1 - beta2) g^2                  second moment
    p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

Adam's ``weight_decay`` adds wd * p to g (L2 regularization, which the adaptive
scale then distorts); AdamW decays the weights directly, p = p - lr * wd * p,
"decoupled" from the gradient statistics: the paper's fix.
"""
import math

from minigrad.backend import get_array_module
from minigrad.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: expected lr, eps, weight_decay >= 0 and betas "
                             f"in [0, 1), got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_array_module(p.data)
                g = p.grad
                state = self.state.setdefault(id(p), {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                if wd and self.decoupled:
                    p.data *= 1.0 - lr * wd
                elif wd:
                    g = g + wd * p.data
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * (g * g)
                # bias corrections: m and v start at 0, so early averages are too small
                step_size = lr / (1.0 - beta1 ** t)
                denom = xp.sqrt(v) * (1.0 / math.sqrt(1.0 - beta2 ** t))
                denom += eps
                p.data -= step_size * (m / denom)


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
