"""Adam (Kingma & Ba, 2015, arXiv:1412.6980) and AdamW (Loshchilov & Hutter, 2019,
arXiv:1711.05101), in PyTorch's form.

    m = beta1 m + (1 - beta1) g                    first moment
    v = beta2 v + (1 - beta2) g^2                  second moment
    p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

Adam's ``weight_decay`` adds wd * p to g (L2 regularization, which the adaptive
scale then distorts); AdamW decays the weights directly, p = p - lr * wd * p,
"decoupled" from the gradient statistics: the paper's fix.

A step that may be skipped on the device (``step(found_inf=flag)``, from
``minigrad.amp.GradScaler``): with keep = 1 - flag (1: take the step, 0: skip it),

    t     = t + keep                       t lives on the device
    beta1 -> 1 - (1 - beta1) keep          m = beta1 m + (1 - beta1) g becomes m = m
    beta2 -> 1 - (1 - beta2) keep          v alike
    lr    -> lr keep                       p = p - 0, and AdamW's decay 1 - lr wd keep = 1

so a skipped step leaves p, m, v and t as they were, and the next one is corrected
for the steps really taken, as if the skipped one had never been called (what
PyTorch's GradScaler gets by not calling ``step()``), without reading the flag.
The skipped gradient, which holds an inf or NaN, is replaced by 0 first (0 * inf is
NaN). Parameters that have always stepped together share one device counter t, so
the scalars above are computed once per step and group, not once per parameter.
"""
import math

from minigrad.backend import backend_of, to_numpy
from minigrad.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW", "adam_step_reference"]


def adam_step_reference(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay=0.0, decoupled=False):
    """One Adam (or AdamW) step as the paper writes it, array by array: returns the new
    (p, m, v). The readable form and the tests' oracle; ``Adam.step`` computes the same
    numbers with ``_adam_update`` (in place, one cache block at a time)."""
    if decoupled:
        p = p - lr * weight_decay * p                     # AdamW: decay the weights directly
    else:
        g = g + weight_decay * p                          # Adam: L2 folded into the gradient
    m = beta1 * m + (1 - beta1) * g                       # first moment
    v = beta2 * v + (1 - beta2) * g * g                   # second moment
    m_hat = m / (1 - beta1 ** t)                          # bias corrections: m and v start at 0,
    v_hat = v / (1 - beta2 ** t)                          # so early averages are too small
    p = p - lr * m_hat / (v_hat ** 0.5 + eps)
    return p, m, v


class Adam(Optimizer):
    """Adam; AdamW when ``decoupled`` (the class attribute). See the module docstring.

    The update runs in place with one scratch array and, on the CPU, block by
    block (``_adam_update``): a block of p, g, m and v (the backend's
    ``cache_block`` elements) is read into cache once and every step of the
    formula runs on it there, instead of a dozen passes over the whole arrays
    through memory with a fresh temporary for each."""

    decoupled = False
    state_arrays = ("exp_avg", "exp_avg_sq")
    state_numbers = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: expected lr, eps, weight_decay >= 0 and betas "
                             f"in [0, 1), got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self, found_inf=None):
        """One update of every parameter with a gradient. ``found_inf``: None, or a 0-d
        boolean device array; where it is True the step is skipped, on the device
        (the module docstring)."""
        counters = {}               # skippable steps: (group, counter) -> (old t, new t, scalars)
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = backend_of(p.data).xp
                state = self.state.setdefault(id(p), {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                g = p.grad
                if found_inf is None:
                    state["step"] = t = _host_count(state["step"]) + 1
                    # bias corrections: m and v start at 0, so early averages are too small
                    scalars = dict(beta1=beta1, beta2=beta2, one_minus_beta1=1.0 - beta1,
                                   one_minus_beta2=1.0 - beta2, eps=eps,
                                   step_size=lr / (1.0 - beta1 ** t),
                                   inv_sqrt_bias2=1.0 / math.sqrt(1.0 - beta2 ** t),
                                   decay=1.0 - lr * wd if self.decoupled and lr * wd else None,
                                   l2=0.0 if self.decoupled else wd)
                else:
                    key = (id(group), id(state["step"]) if hasattr(state["step"], "dtype") else state["step"])
                    if key not in counters:            # the old t kept alive: its id stays its own
                        counters[key] = (state["step"],) + self._skippable_scalars(group, state["step"],
                                                                                   found_inf, p.dtype)
                    _, state["step"], scalars = counters[key]
                    g = xp.where(found_inf, 0.0, g)              # a skipped inf or NaN: 0 * NaN is NaN
                _adam_update(p.data, g, state["exp_avg"], state["exp_avg_sq"], **scalars)

    def _skippable_scalars(self, group, t, found_inf, dtype):
        """(t + keep, the scalars of ``_adam_block``) on the device, keep = 1 - found_inf."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        xp = backend_of(found_inf).xp
        keep = 1.0 - found_inf.astype("float64")                          # () 1: step, 0: skip
        t = xp.asarray(t + keep)                                          # () float64
        corrected = xp.maximum(t, 1.0)        # t = 0 (a first step skipped): nothing to correct
        # in float64, each rounded once to the parameters' dtype (as a Python number is)
        scalars = dict(beta1=1.0 - (1.0 - beta1) * keep, beta2=1.0 - (1.0 - beta2) * keep,
                       one_minus_beta1=(1.0 - beta1) * keep, one_minus_beta2=(1.0 - beta2) * keep,
                       step_size=lr * keep / (1.0 - beta1 ** corrected),
                       inv_sqrt_bias2=1.0 / xp.sqrt(1.0 - beta2 ** corrected),
                       decay=1.0 - lr * wd * keep if self.decoupled and lr * wd else None)
        scalars = {k: v.astype(dtype) if v is not None else None for k, v in scalars.items()}
        return t, dict(scalars, eps=eps, l2=0.0 if self.decoupled else wd)


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _adam_update(p, g, m, v, **scalars):
    """One Adam step in place on the arrays p, m, v (g is only read), one cache
    block at a time where the backend has a ``cache_block`` and the arrays are
    contiguous (so a flat view of each shares its memory); else whole arrays.
    ``scalars``: the keyword arguments of ``_adam_block``."""
    backend = backend_of(p)
    xp, block = backend.xp, backend.cache_block
    arrays = (p, g, m, v)
    if block is None or p.size <= block or not all(a.flags.c_contiguous for a in arrays):
        _adam_block(xp, *arrays, xp.empty_like(p), **scalars)
        return
    flat = [a.reshape(-1) for a in arrays]                                # 4 views of (N,)
    scratch = xp.empty(block, dtype=p.dtype)                              # (block,)
    for start in range(0, p.size, block):
        piece = slice(start, start + block)
        n = min(block, p.size - start)
        _adam_block(xp, *(a[piece] for a in flat), scratch[:n], **scalars)


def _adam_block(xp, p, g, m, v, tmp, *, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, step_size,
                inv_sqrt_bias2, decay, l2):
    """``adam_step_reference``'s formula on one block, in place; ``tmp`` is scratch of the
    block's shape. The scalars are numbers, or 0-d device arrays for a skippable step;
    ``decay`` is None where there is none.

    Why this form is faster: the reference makes a new array for each of its ~10 terms
    and walks p, g, m, v through memory each time; here every term is computed into
    ``tmp`` or in place, on a block small enough to stay in the CPU's cache, so each
    block of the four arrays comes from memory once per step (5.2M parameters: 20 ->
    11 ms; benchmarks/README.md)."""
    if decay is not None:
        p *= decay                                        # AdamW: p = (1 - lr wd) p
    if l2:
        g = g + l2 * p                                    # Adam's L2 term: a new array, g is the user's
    # m = beta1 m + (1 - beta1) g
    m *= beta1
    xp.multiply(g, one_minus_beta1, out=tmp)
    m += tmp
    # v = beta2 v + (1 - beta2) g^2
    v *= beta2
    xp.multiply(g, g, out=tmp)
    tmp *= one_minus_beta2
    v += tmp
    # p = p - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    xp.sqrt(v, out=tmp)
    tmp *= inv_sqrt_bias2
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= step_size
    p -= tmp


def _host_count(t):
    """A step count as a Python int: a device counter (left by skippable steps) read once."""
    return int(to_numpy(t)) if hasattr(t, "dtype") else t
