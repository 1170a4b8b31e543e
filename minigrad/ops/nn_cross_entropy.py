"""Cross-entropy between logits and class indices, fused with log-softmax.

For one example with logits x (C classes) and target class t:

    log p = log_softmax(x)
    loss  = -(1 - eps) log p_t - (eps / C) sum_c log p_c     (label smoothing eps)

that is, the cross-entropy -sum_c q_c log p_c against the smoothed target
distribution q = (1 - eps) onehot(t) + eps / C (Szegedy et al., 2016, "Rethinking the
Inception Architecture", sec. 7). Its gradient has a closed form, derived in three
steps:

    1. log p_c = x_c - log sum_j exp(x_j), and d/dx_j log sum_j' exp(x_j') = p_j, so
           d log p_c / d x_j = delta_cj - p_j
    2. the chain rule through the C terms of the loss:
           d loss / d x_j = -sum_c q_c (delta_cj - p_j) = -q_j + p_j sum_c q_c
    3. q is a distribution: sum_c q_c = (1 - eps) + C (eps / C) = 1, so

           d loss / d x = p - q = softmax(x) - q

No (C, C) Jacobian of the log-softmax is ever formed, and backward needs only
log p from the forward. With eps = 0, q is onehot(t) and the gradient is
softmax(x) - onehot(t).

Examples whose target is ``ignore_index`` (padding) add nothing to the loss or
the gradient; ``reduction="mean"`` divides by the number of the others, as PyTorch
does (so a batch with every target ignored gives NaN, also as PyTorch).

The fused op is ``CrossEntropy`` (called by ``cross_entropy``); its composed oracle
is ``cross_entropy_composed`` at the end of this file: ``log_softmax_composed`` of
``minigrad/ops/nn_softmax.py``, an index and a sum, the engine deriving the
gradient through all of them. The tests hold the two equal (tests/test_nn_ops.py).
"""
from minigrad.backend import get_array_module
from minigrad.deferred_checks import check_indices
from minigrad.function import Function
from minigrad.ops.nn_softmax import log_softmax_composed
from minigrad.ops.reductions import logsumexp_array
from minigrad.tensor import as_tensor

__all__ = ["cross_entropy", "cross_entropy_composed"]


class CrossEntropy(Function):
    """loss = cross-entropy of logits (N, C) against targets (N,) (see module docstring)."""

    def __init__(self, ignore_index, label_smoothing, reduction):
        self.ignore_index = ignore_index
        self.eps = label_smoothing
        self.reduction = reduction

    def forward(self, logits, target):
        xp = get_array_module(logits)
        N, C = logits.shape
        lse = logsumexp_array(logits, 1)                          # (N, 1): log p = logits - lse
        valid = target != self.ignore_index                       # (N,)
        t = xp.where(valid, target, 0)                            # (N,) safe to index with
        nll = lse[:, 0] - logits[xp.arange(N), t]                 # (N,) -log p_t
        loss = (1 - self.eps) * nll                               # (N,)
        if self.eps > 0:      # only then: a masked logit (-inf) would make 0 * -inf = NaN
            loss = loss - (self.eps / C) * (logits - lse).sum(axis=1)
        loss = xp.where(valid, loss, 0)                           # (N,)
        # Saved: the logits and lse, and not log p or softmax as well: one (N, C) array
        # kept, not two; backward recomputes softmax = exp(logits - lse) from them.
        self.save_for_backward(logits, lse, t, valid)
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        self.count = valid.sum()
        return loss.sum() / self.count.astype(loss.dtype)         # () mean over valid targets

    def backward(self, gy):
        logits, lse, t, valid = self.saved
        xp = get_array_module(logits)
        N, C = logits.shape
        # d loss_n / d x_n = softmax(x_n) - q_n (module docstring, steps 1-3),
        # built in one (N, C) array, in place
        g_logits = logits - lse                                        # (N, C) log p
        xp.exp(g_logits, out=g_logits)                                 # softmax
        g_logits[xp.arange(N), t] -= 1 - self.eps                      # - (1 - eps) onehot(t)
        if self.eps > 0:
            g_logits -= self.eps / C                                   # - eps / C
        if self.reduction == "mean":
            gy = gy / self.count.astype(gy.dtype)
        # each example's upstream gradient, 0 where its target is ignored
        row_scale = xp.where(valid, gy, 0).astype(logits.dtype)        # (N,)
        g_logits *= row_scale[:, None]
        return g_logits, None


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy loss of unnormalised ``logits`` against class indices ``target``.

    Shapes as in PyTorch: logits (N, C) with target (N,); logits (C,) with a scalar
    target; or logits (N, C, d1, ...) with target (N, d1, ...), the class axis
    second. ``reduction="none"`` returns one loss per target, of the target's shape.
    """
    logits = as_tensor(logits)
    target = as_tensor(target, like=logits)
    _check(logits, target, label_smoothing, reduction)
    C = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    if logits.ndim == 1:                                          # (C,) -> (1, C)
        flat_logits = logits.reshape(1, C)
    else:                                                         # (N, C, d...) -> (N d..., C)
        flat_logits = logits.transpose((0, *range(2, logits.ndim), 1)).reshape(-1, C)
    flat_target = target.reshape(-1)
    _check_range(flat_target, C, ignore_index)
    loss = CrossEntropy(ignore_index, label_smoothing, reduction)(flat_logits, flat_target)
    return loss.reshape(target.shape) if reduction == "none" else loss


def _check(logits, target, label_smoothing, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.dtype.kind != "f":
        raise TypeError(f"cross_entropy: expected float logits, got dtype {logits.dtype}")
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: expected integer class indices as target, got dtype {target.dtype}"
        )
    expected = () if logits.ndim == 1 else (logits.shape[0],) + logits.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"cross_entropy: logits of shape {logits.shape} need a target of shape "
            f"{expected}, got {target.shape}"
        )


def _check_range(target, C, ignore_index):
    """On a device inside a training step, checked there and read later
    (minigrad/deferred_checks.py)."""
    data = target.data
    bad = (data != ignore_index) & ((data < 0) | (data >= C))
    check_indices(bad, IndexError, lambda: (
        f"cross_entropy: target {int(data[bad][0])} is out of range: expected a class in "
        f"[0, {C}) or ignore_index={ignore_index}"))


def cross_entropy_composed(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """The same loss for logits (N, C), from primitive ops: the test oracle of the fused
    op ``CrossEntropy`` (``cross_entropy`` above). The engine derives its gradient
    through log-softmax, indexing and sums, the path steps 1-3 of the module docstring
    take by hand."""
    N, C = logits.shape
    log_p = log_softmax_composed(logits, axis=1)                  # (N, C)
    target = as_tensor(target, like=logits)
    valid = (target != ignore_index).data                         # (N,)
    xp = get_array_module(valid)
    t = xp.where(valid, target.data, 0)
    nll = -log_p[xp.arange(N), t]                                 # (N,)
    loss = (1 - label_smoothing) * nll
    if label_smoothing > 0:
        loss = loss - (label_smoothing / C) * log_p.sum(axis=1)
    loss = loss * valid.astype(loss.dtype)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / float(valid.sum())
