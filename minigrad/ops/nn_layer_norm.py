"""Layer normalization (Ba, Kiros & Hinton, 2016, arXiv:1607.06450).

Over the last dimensions (``normalized_shape``, N elements) of each example:

    mu    = (1/N) sum_i x_i
    xc    = x - mu                              centred
    var   = (1/N) sum_i xc_i^2                  (biased, as the paper and PyTorch)
    rstd  = 1 / sqrt(var + eps)                 (eps inside the root, as PyTorch)
    x_hat = xc * rstd
    y     = gamma * x_hat + beta

The fused op (``LayerNorm`` below, called by ``layer_norm``) has its composed
oracle at the end of this file: ``layer_norm_composed``, the same lines from
primitive ops, the engine deriving their gradient. The tests hold the two equal in
value and gradient (tests/test_nn_ops.py).

Backward: the forward in reverse, one gradient per intermediate (Chainer's
``layer_normalization.py`` names them so), for one example; gy = dL/dy is given and
every sum runs over the N normalized elements.

    1. y = gamma * x_hat + beta:
           g_x_hat_i = gy_i gamma_i
           g_gamma   = sum over the examples of gy * x_hat;   g_beta = sum of gy
    2. x_hat = xc * rstd: x_hat_i reads xc_i and the shared rstd, so
           g_xc_i   = g_x_hat_i rstd                          (this path; more in step 4)
           g_rstd   = sum_i g_x_hat_i xc_i
    3. rstd = (var + eps)^(-1/2):
           g_var    = g_rstd * (-1/2) (var + eps)^(-3/2) = -(1/2) rstd^3 g_rstd
    4. var = (1/N) sum_i xc_i^2: d var / d xc_i = 2 xc_i / N, added to step 2's
           g_xc_i   = g_x_hat_i rstd + (2/N) xc_i g_var
    5. xc = x - mu: d xc_i / d x_j = delta_ij, d xc_i / d mu = -1
           g_mu     = -sum_i g_xc_i
    6. mu = (1/N) sum_i x_i: d mu / d x_j = 1/N, added to step 5's identity path
           gx_i     = g_xc_i + g_mu / N

(var reads mu only through xc, and d var / d mu = -(2/N) sum_i xc_i = 0: no
further path.) Collecting terms, with xc_i = x_hat_i / rstd (llm.c's
``doc/layernorm`` does the same simplification):

    g_rstd = (1/rstd) sum_i g_x_hat_i x_hat_i
    g_var  = -(1/2) rstd^2 sum_i g_x_hat_i x_hat_i  = -(N/2) rstd^2 mean(g_x_hat x_hat)
    g_xc_i = rstd g_x_hat_i - (2/N) (x_hat_i / rstd) (N/2) rstd^2 mean(g_x_hat x_hat)
           = rstd (g_x_hat_i - x_hat_i mean(g_x_hat x_hat))
    g_mu   = -rstd (sum_i g_x_hat_i - mean(g_x_hat x_hat) sum_i x_hat_i)
           = -N rstd mean(g_x_hat)                          since sum_i x_hat_i = 0
    gx_i   = g_xc_i + g_mu / N

    gx     = rstd (g_x_hat - mean(g_x_hat) - x_hat mean(g_x_hat x_hat))

the closed form ``LayerNorm.backward`` computes, with the means over the normalized
dimensions. It reads: the gradient is g_x_hat made orthogonal to the two directions
that normalization removes, the constant vector (the mean) and x_hat itself (the
scale), then divided by the std. It needs only x_hat and rstd from the forward, and
makes one new array of x's size (and one to work in) instead of the six steps'
intermediates.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats
from minigrad.tensor import as_tensor

__all__ = ["layer_norm", "layer_norm_composed"]


class LayerNorm(Function):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta over the last ``k`` axes."""

    def __init__(self, k, eps, has_weight, has_bias):
        self.k, self.eps = k, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        params = list(params)
        weight = params.pop(0) if self.has_weight else None
        bias = params.pop(0) if self.has_bias else None
        axes = tuple(range(x.ndim - self.k, x.ndim))                # the normalized axes
        mu = x.mean(axis=axes, keepdims=True)                         # (..., 1)
        x_hat = x - mu                                                # (..., N) centred
        var = (x_hat * x_hat).mean(axis=axes, keepdims=True)          # (..., 1)
        rstd = 1 / (var + self.eps) ** 0.5                            # (..., 1)
        x_hat *= rstd                                                 # (..., N) normalized, in place
        # Saved: x_hat and rstd, what backward reads, and gamma. Not x: x is not kept by
        # the graph (it holds only edges), so saving x instead would cost the same array
        # of x's size and backward two more passes to rebuild x_hat from it.
        self.save_for_backward(x_hat, rstd, weight)
        if weight is not None:
            y = x_hat * weight                                        # (..., N) a new array: x_hat stays
            if bias is not None:
                y += bias
        elif bias is not None:
            y = x_hat + bias                                          # (..., N)
        else:
            y = x_hat.copy()                                          # (..., N) the output is the caller's
        return y

    def backward(self, gy):
        x_hat, rstd, weight = self.saved
        xp = get_array_module(x_hat)
        axes = tuple(range(x_hat.ndim - self.k, x_hat.ndim))
        batch_axes = tuple(range(x_hat.ndim - self.k))
        grads = []
        # step 1: d y / d x_hat = gamma; gx is built in place in g_x_hat's array
        gx = gy * weight if weight is not None else gy.copy()          # g_x_hat, (..., N)
        # gx = rstd (g_x_hat - mean(g_x_hat) - x_hat mean(g_x_hat x_hat)): steps 2-6 of
        # the module docstring collected; one more array of x's size (``work``) at most
        work = gx * x_hat                                             # (..., N)
        mean_g_x_hat_x_hat = work.mean(axis=axes, keepdims=True)      # (..., 1)
        mean_g_x_hat = gx.mean(axis=axes, keepdims=True)              # (..., 1)
        xp.multiply(x_hat, mean_g_x_hat_x_hat, out=work)              # x_hat mean(g_x_hat x_hat)
        gx -= mean_g_x_hat
        gx -= work
        gx *= rstd
        grads.append(gx)
        if self.has_weight:
            # dy/dgamma = x_hat, summed over the examples
            grads.append(xp.multiply(gy, x_hat, out=work).sum(axis=batch_axes))
        if self.has_bias:
            # dy/dbeta = 1, summed over the examples
            grads.append(gy.sum(axis=batch_axes))
        return tuple(grads)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the last ``len(normalized_shape)`` axes of x.

    Args (as ``torch.nn.functional.layer_norm``):
        normalized_shape: the trailing shape to normalize over, e.g. (D,).
        weight, bias: gamma and beta of shape ``normalized_shape``, or None.
    """
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if x.shape[x.ndim - k:] != normalized_shape or k == 0:
        raise ValueError(
            f"layer_norm: expected input with trailing shape {normalized_shape}, got {x.shape}"
        )
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = as_tensor(p, like=x)
            if p.shape != normalized_shape:
                raise ValueError(
                    f"layer_norm: expected {name} of shape {normalized_shape}, got {p.shape}"
                )
            params.append(p)
    x, *params = as_floats(x, *params)       # an integer x: the parameters' dtype, else float32
    return LayerNorm(k, eps, weight is not None, bias is not None)(x, *params)


def layer_norm_composed(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """The same normalization from primitive ops: the test oracle of the fused op
    ``LayerNorm`` (``layer_norm`` above), whose gradient the engine derives step by
    step as the module docstring does by hand."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    y = (x - mu) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
