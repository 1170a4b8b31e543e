"""The attention core as one fused op: scores, mask, softmax, dropout and weighted sum,
with one hand-derived backward (Vaswani et al., 2017, §3.2.1).

Forward, for q (..., T, d), k (..., S, d), v (..., S, d_v), a fixed mask M and, in
training with dropout on the weights (probability p_drop), a fixed keep-mask m (1 with
probability 1 - p_drop):

    A  = q k^T * scale + M        (..., T, S)   M: -inf where not allowed, or added floats
    P  = softmax(A)               (..., T, S)   a row with every key masked: all zeros
    P' = P (.) m / (1 - p_drop)   (..., T, S)   dropout; P' = P without it
    O  = P' v                     (..., T, d_v)

Backward, with gO = dL/dO and gP' = dL/dP' (nonzero when the weights P' are used too):

    gv   = P'^T gO
    gP' += gO v^T
    gP   = gP' (.) m / (1 - p_drop)
    gA   = P (.) (gP - sum_s gP (.) P)          the softmax's Jacobian, from its output
    gq   = gA k * scale;    gk = gA^T q * scale

Composed from ops, the same core builds a graph of seven (k's transpose, matmul,
scale, mask, softmax, dropout, matmul) whose backward keeps each intermediate; here
only q, k, v, P and the keep-mask are kept (P' is recomputed in backward).

Its oracle, the readable reference, is ``attention_core_composed`` in
minigrad/nn/scaled_dot_product.py: the same core from primitive ops; the keep-mask is
drawn as ``dropout`` draws it (nn_dropout.py::dropout_mask), so one seed gives both the
same mask, and tests/test_nn_attention_core.py holds the two equal (values and
gradients, every kind of mask, with and without dropout). ``attention_core`` in that
file checks the inputs, sets the scale (1/sqrt(d_k), and why) and calls this op
through ``attention_core_fused``.

float16 q, k, v (mixed precision, ``minigrad.amp``): the two products run in float16,
the softmax and its backward in float32 (A is widened before it, P kept in float32 and
rounded to float16 for the products), as the composed version under autocast does.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._matmul import matmul_arrays
from minigrad.ops.nn_dropout import dropout_mask, keep_scale
from minigrad.ops.reductions import stable_shift

__all__ = ["attention_core_fused"]


class AttentionCore(Function):
    """(q, k, v) -> (O, P'); the scale, the masks and the keep-mask are constants of the call."""

    def __init__(self, scale, bool_mask=None, float_mask=None, keep=None, keep_scale=1.0):
        self.scale, self.bool_mask, self.float_mask = scale, bool_mask, float_mask
        self.keep, self.keep_scale = keep, keep_scale

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
        weights = self._dropped(p)                                         # P', (..., T, S)
        p_v = weights.astype(v.dtype, copy=False)                          # P' as the product reads it
        if p.ndim != 4 or v.dtype == "float16":
            return matmul_arrays(p_v, v), weights                          # (..., T, d_v), (..., T, S)
        # O of heads (B, h, T, d_v) written into (B, T, h, d_v) memory, returned as its
        # transposed view: joining the heads (transpose(0, 2, 1, 3).reshape(B, T, h d_v),
        # nn/multihead_attention.py) is then a view, not a copy of O
        B, h, T, _ = p.shape
        o = xp.empty((B, T, h, v.shape[-1]), dtype=v.dtype).transpose(0, 2, 1, 3)
        xp.matmul(p_v, v, out=o)
        return o, weights                                                  # (B, h, T, d_v), (B, h, T, S)

    def backward(self, go, g_weights):
        q, k, v, p = self.saved
        xp = get_array_module(go)
        p_v = self._dropped(p).astype(v.dtype, copy=False)                 # P' as the product read it
        # O = P' v
        gv = matmul_arrays(xp.swapaxes(p_v, -1, -2), go)                   # (..., S, d_v)
        gp = matmul_arrays(go, xp.swapaxes(v, -1, -2)).astype(p.dtype, copy=False)   # (..., T, S)
        gp += g_weights                                                    # gP', in place
        if self.keep is not None:
            # P' = P (.) m / (1 - p_drop): gP = gP' (.) m / (1 - p_drop), in place
            gp *= self.keep
            gp *= self.keep_scale
        # P = softmax(A): gA_j = P_j (gP_j - sum_i gP_i P_i), in place in gP's array
        ga = gp
        ga -= (ga * p).sum(axis=-1, keepdims=True)
        ga *= p
        ga *= self.scale                                                   # A = q k^T * scale + M
        ga = ga.astype(q.dtype, copy=False)                                # the products' precision
        gq = matmul_arrays(ga, k)                                          # (..., T, d)
        gk = matmul_arrays(xp.swapaxes(ga, -1, -2), q)                     # (..., S, d)
        return gq, gk, gv

    def _dropped(self, p):
        """P' = P (.) m / (1 - p_drop), as ``dropout`` computes it; P itself without dropout."""
        if self.keep is None:
            return p
        return p * self.keep * self.keep_scale


def attention_core_fused(q, k, v, scale, bool_mask=None, float_mask=None, dropout_p=0.0):
    """(O, P') of the module docstring for q, k, v of one leading (batch, head) shape;
    the masks are backend arrays broadcastable to (..., T, S), or None. ``dropout_p``
    > 0 draws the keep-mask m (..., T, S) from the backend's rng (``dropout_mask``).
    ``attention_core`` (minigrad/nn/scaled_dot_product.py) checks the inputs and calls
    this; its oracle is ``attention_core_composed`` in the same file."""
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"attention_core_fused: q, k and v need one leading shape, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    keep = None
    if dropout_p > 0.0:
        keep = dropout_mask(q, dropout_p, shape=q.shape[:-1] + k.shape[-2:-1])   # (..., T, S)
    return AttentionCore(scale, bool_mask, float_mask, keep, keep_scale(dropout_p))(q, k, v)
