"""Stochastic gradient descent with momentum and weight decay (PyTorch's form).

    g = grad + weight_decay * p
    b = momentum * b + (1 - dampening) * g      (b = g at the first step)
    g = g + momentum * b   if nesterov else   b
    p = p - lr * g

A step that may be skipped on the device (``step(found_inf=flag)``, from
``minigrad.amp.GradScaler``): with keep = 1 - flag (1: take the step, 0: skip it),
the gradient is replaced by 0 where skipped (0 * inf is NaN), and

    b = (1 - (1 - momentum) keep) b + c keep g,   c = 1 - dampening started
    p = p - lr keep g

where ``started`` (a device flag) says whether b has been set by a step taken: the
first one sets b = g, as PyTorch's. A skipped step leaves p and b as they were.
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

    def step(self, found_inf=None):
        """One update of every parameter with a gradient. ``found_inf``: None, or a 0-d
        boolean device array; where it is True the step is skipped, on the device
        (the module docstring)."""
        if found_inf is not None:
            return self._skippable_step(found_inf)
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

    def _skippable_step(self, found_inf):
        """The update times keep = 1 - found_inf, on the device (the module docstring)."""
        xp = backend_of(found_inf).xp
        keep = 1.0 - found_inf.astype("float64")                          # () 1: step, 0: skip
        for group in self.param_groups:
            lr, mu, wd, dampening = group["lr"], group["momentum"], group["weight_decay"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = xp.where(found_inf, 0.0, p.grad)
                if wd:
                    g += wd * p.data
                if mu:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = xp.zeros_like(p.data)
                        state["started"] = xp.zeros((), dtype="float64")
                    buf = state["momentum_buffer"]
                    started = state.setdefault("started", xp.ones((), dtype="float64"))   # a plain step's buffer
                    buf *= (1.0 - (1.0 - mu) * keep).astype(p.dtype)
                    buf += g * (keep * (1.0 - dampening * started)).astype(p.dtype)
                    state["started"] = xp.asarray(xp.maximum(started, keep))
                    g = g + mu * buf if group["nesterov"] else buf
                p.data -= g * (lr * keep).astype(p.dtype)
