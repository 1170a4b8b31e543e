"""The attention core as one fused op: scores, mask, softmax and weighted sum, with
one hand-derived backward (Vaswani et al., 2017, §3.2.1).

Forward, for q (..., T, d), k (..., S, d), v (..., S, d_v) and a fixed mask M:

    A = q k^T * scale + M         (..., T, S)   M: -inf where not allowed, or added floats
    P = softmax(A)                (..., T, S)   a row with every key masked: all zeros
    O = P v                       (..., T, d_v)

Backward, with gO = dL/dO and gP = dL/dP (nonzero when the weights P are used too):

    gv  = P^T gO
    gP += gO v^T
    gA  = P (.) (gP - sum_s gP (.) P)           the softmax's Jacobian, from its output
    gq  = gA k * scale;    gk = gA^T q * scale

Composed from ops, the same core builds a graph of six (k's transpose, matmul, scale,
mask, softmax, matmul) whose backward keeps each intermediate; here only q, k, v and
P are kept.
The composed version (``minigrad.nn.scaled_dot_product.attention_weights`` then a
matmul) is the test oracle.

float16 q, k, v (mixed precision, ``minigrad.amp``): the two products run in float16,
the softmax and its backward in float32 (A is widened before it, P kept in float32 and
rounded to float16 for the products), as the composed version under autocast does.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._matmul import matmul_arrays
from minigrad.ops.reductions import stable_shift

__all__ = ["attention_fused"]


class Attention(Function):
    """(q, k, v) -> (O, P); masks and scale are constants of the call."""

    def __init__(self, scale, bool_mask=None, float_mask=None):
        self.scale, self.bool_mask, self.float_mask = scale, bool_mask, float_mask

    def forward(self, q, k, v):
        xp = get_array_module(q)
        # A, then P, built in place in one (..., T, S) array (a new one only for the boolean mask)
        p = matmul_arrays(q, xp.swapaxes(k, -1, -2))                       # (..., T, S)
        if p.dtype == "float16":                                           # the softmax in float32
            p = p.astype("float32")
        p *= self.scale
        if self.float_mask is not None:
            p += self.float_mask
        if self.bool_mask is not None:
            p = xp.where(self.bool_mask, float("-inf"), p)
        p -= stable_shift(p, -1)                                           # a masked row: shift 0
        xp.exp(p, out=p)
        total = p.sum(axis=-1, keepdims=True)
        p /= xp.where(total == 0, 1, total)                                # (..., T, S)
        self.save_for_backward(q, k, v, p)
        p_v = p.astype(v.dtype, copy=False)                                # P as the product reads it
        if p.ndim != 4 or v.dtype == "float16":
            return matmul_arrays(p_v, v), p                                # (..., T, d_v), (..., T, S)
        # O of heads (B, h, T, d_v) written into (B, T, h, d_v) memory, returned as its
        # transposed view: joining the heads (transpose(0, 2, 1, 3).reshape(B, T, h d_v),
        # nn/multihead_attention.py) is then a view, not a copy of O
        B, h, T, _ = p.shape
        o = xp.empty((B, T, h, v.shape[-1]), dtype=v.dtype).transpose(0, 2, 1, 3)
        xp.matmul(p_v, v, out=o)
        return o, p                                                        # (B, h, T, d_v), (B, h, T, S)

    def backward(self, go, gp):
        q, k, v, p = self.saved
        xp = get_array_module(go)
        p_v = p.astype(v.dtype, copy=False)                                # P as the product read it
        # O = P v
        gv = matmul_arrays(xp.swapaxes(p_v, -1, -2), go)                   # (..., S, d_v)
        ga = matmul_arrays(go, xp.swapaxes(v, -1, -2)).astype(p.dtype, copy=False)   # (..., T, S)
        ga += gp                                                           # gP, in place
        # P = softmax(A): gA_j = P_j (gP_j - sum_i gP_i P_i), in place
        ga -= (ga * p).sum(axis=-1, keepdims=True)
        ga *= p
        ga *= self.scale                                                   # A = q k^T * scale + M
        ga = ga.astype(q.dtype, copy=False)                                # the products' precision
        gq = matmul_arrays(ga, k)                                          # (..., T, d)
        gk = matmul_arrays(xp.swapaxes(ga, -1, -2), q)                     # (..., S, d)
        return gq, gk, gv


def attention_fused(q, k, v, scale, bool_mask=None, float_mask=None):
    """(O, P) of the module docstring. q, k, v share their leading (batch, head) shape;
    the masks are backend arrays broadcastable to (..., T, S), or None."""
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"attention_fused: q, k and v need one leading shape, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    return Attention(scale, bool_mask, float_mask)(q, k, v)
