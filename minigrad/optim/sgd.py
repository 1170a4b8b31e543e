"""Stochastic gradient descent with momentum and weight decay (PyTorch's form).

    g = grad + weight_decay * p
    b = momentum * b + (1 - dampening) * g      (b = g at the first step)
    g = g + momentum * b   if nesterov else   b
    p = p - lr * g
"""
from minigrad.backend import backend_of
from minigrad.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd:
                    g = g + wd * p.data
                if mu:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        # an array of its own, also for a 0-d parameter (where NumPy's
                        # arithmetic gives a scalar, which *= below would not update)
                        state["momentum_buffer"] = backend_of(p.data).xp.array(g, copy=True)
                    else:
                        buf = state["momentum_buffer"]
                        buf *= mu
                        buf += (1.0 - group["dampening"]) * g
                    buf = state["momentum_buffer"]
                    g = g + mu * buf if group["nesterov"] else buf
                p.data -= lr * g
