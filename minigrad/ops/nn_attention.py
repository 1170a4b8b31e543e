"""The attention core as one fused op: scores, mask, softmax, dropout and weighted sum,
with one hand-derived backward (Vaswani et al., 2017, §3.2.1).

Forward, for q (..., T, d), k (..., S, d), v (..., S, d_v), a fixed mask M and, in
training with dropout on the weights (probability p_drop), a fixed keep-mask m (1 with
probability 1 - p_drop):

    A  = q k^T * scale + M        (..., T, S)   M: -inf where not allowed, or added floats
    P  = softmax(A)               (..., T, S)   a row with every key masked: all zeros
    P' = P (.) m / (1 - p_drop)   (..., T, S)   dropout; P' = P without it
    O  = P' v                     (..., T, d_v)

Backward, with gO = dL/dO and gP' = dL/dP' (when the weights P' are an output and used):

    P    = softmax(A)                           rebuilt from q and k (see below)
    gv   = P'^T gO
    gP'  = gO v^T (+ gP' from the weights' own use)
    gP   = gP' (.) m / (1 - p_drop)
    gA   = P (.) (gP - sum_s gP (.) P)          the softmax's Jacobian, from its output
    gq   = gA k * scale;    gk = gA^T q * scale

What is kept for backward, and why not P: q, k, v and the boolean keep-mask. P is
(..., T, S), per head a (T, S) array: the largest an attention layer makes (BERT's
benchmark step, B 32, h 4, T 128: 8.4 MB a layer, two thirds of q, k and v together).
Kept for every layer until backward, it was the one array the step's saved activations
held beyond PyTorch's. Backward rebuilds it from q and k with forward's own lines (one
product, the row max, exp, the row sum), so bit for bit the P that forward used.
FlashAttention (Dao et al., 2022, arXiv:2205.14135) and PyTorch's fused attention
rebuild it too, from one number kept per query (L, the log of the row's sum of
exponentials), which spares them the row max and sum; here backward redoes those two
reductions, small next to the product, and gets forward's P exactly (exp(A - L) rounds
differently). Composed from ops, the same core builds a graph of seven (k's transpose,
matmul, scale, mask, softmax, dropout, matmul) whose backward keeps each intermediate,
P among them.

``need_weights=False`` (what a layer in training asks for): O is the only output, so
P' is freed when forward returns, and the walk back makes no zero gradient of P's size
for an output nobody used.

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
import math

from minigrad.backend import backend_of, get_array_module
from minigrad.function import Function
from minigrad.ops._matmul import matmul_arrays, matmul_into
from minigrad.ops.nn_dropout import dropout_mask, keep_scale
from minigrad.ops.reductions import stable_shift

__all__ = ["attention_core_fused"]


class AttentionCore(Function):
    """(q, k, v) -> (O, P'), or O alone when ``need_weights`` is False; the scale, the
    masks and the keep-mask are constants of the call.

    Forward and backward run over blocks of the leading axis (the batch): each block's
    (rows, ..., T, S) arrays are made, used and dropped while they are in cache, and no
    (..., T, S) array of the whole batch is made (but the weights, when asked for). Every
    row of every block is computed by the same lines as the whole batch would be, so
    the result is the same bit for bit (tests/test_nn_attention_core.py).
    """

    def __init__(self, scale, bool_mask=None, float_mask=None, keep=None, keep_scale=1.0,
                 need_weights=True):
        self.scale, self.bool_mask, self.float_mask = scale, bool_mask, float_mask
        self.keep, self.keep_scale = keep, keep_scale
        self.need_weights = need_weights

    def forward(self, q, k, v):
        xp = get_array_module(q)
        self.save_for_backward(q, k, v)                                    # not P (module docstring)
        o = self._output_array(q, v)                                       # (..., T, d_v)
        weights = None
        for rows in self._blocks(q, k):
            p = self._probabilities(q[rows], k[rows], rows)                # P, (rows, ..., T, S)
            p_dropped = self._dropped(p, rows)                             # P'
            if self.need_weights:
                if weights is None:
                    weights = xp.empty(q.shape[:-1] + k.shape[-2:-1], dtype=p.dtype)   # (..., T, S)
                weights[rows] = p_dropped
            # O = P' v
            matmul_into(o[rows], p_dropped.astype(v.dtype, copy=False), v[rows])
        return (o, weights) if self.need_weights else o

    def backward(self, go, g_weights=None):
        q, k, v = self.saved
        xp = get_array_module(go)
        gq, gk, gv = xp.empty_like(q), xp.empty_like(k), xp.empty_like(v)
        for rows in self._blocks(q, k):
            p = self._probabilities(q[rows], k[rows], rows)                # P, as forward made it
            p_v = self._dropped(p, rows).astype(v.dtype, copy=False)       # P' as the product read it
            # O = P' v
            matmul_into(gv[rows], xp.swapaxes(p_v, -1, -2), go[rows])     # (rows, ..., S, d_v)
            del p_v
            gp = matmul_arrays(go[rows], xp.swapaxes(v[rows], -1, -2)).astype(p.dtype, copy=False)  # (rows, ..., T, S)
            if g_weights is not None:
                gp += g_weights[rows]                                      # gP', in place
            if self.keep is not None:
                # P' = P (.) m / (1 - p_drop): gP = gP' (.) m / (1 - p_drop), in place
                gp *= _rows_of(self.keep, rows, gp.ndim)
                gp *= self.keep_scale
            # P = softmax(A): gA = P (.) gP - P (.) sum_s (P (.) gP)_s, in place in gP's and
            # P's arrays (P is backward's own: no third (rows, ..., T, S) array)
            ga = gp
            ga *= p                                                        # P (.) gP
            p *= ga.sum(axis=-1, keepdims=True)                            # P (.) sum_s (P (.) gP)_s
            ga -= p
            del p
            ga *= self.scale                                               # A = q k^T * scale + M
            ga = ga.astype(q.dtype, copy=False)                            # the products' precision
            matmul_into(gq[rows], ga, k[rows])                            # (rows, ..., T, d)
            matmul_into(gk[rows], xp.swapaxes(ga, -1, -2), q[rows])       # (rows, ..., S, d)
        return gq, gk, gv

    def _blocks(self, q, k):
        """Indices of blocks of the leading axis, each with at most the backend's
        ``cache_block`` elements of P (at least one row); ``...`` (the whole) for q
        without a leading axis or a backend without a cache_block (a GPU: one kernel
        per op over the whole batch is what it runs best)."""
        cache_block = backend_of(q).cache_block
        if q.ndim < 3 or cache_block is None:
            return [...]
        rows = q.shape[0]
        per_row = math.prod(q.shape[1:-1]) * k.shape[-2]                   # P's elements in one row
        step = max(1, cache_block // max(per_row, 1))
        if step >= rows:
            return [...]
        return [slice(start, start + step) for start in range(0, rows, step)]

    def _probabilities(self, q, k, rows):
        """P = softmax(A) = exp(A - c) / z (c the row's max, z the row's sum of exp(A - c)),
        A = q k^T * scale + M, for one block of rows (q, k already the block's), built
        in place in one new (rows, ..., T, S) array (float32 for float16 q, k):
        forward's lines, which backward reruns."""
        xp = get_array_module(q)
        p = matmul_arrays(q, xp.swapaxes(k, -1, -2))                       # (rows, ..., T, S)
        if p.dtype == "float16":                                           # the softmax in float32
            p = p.astype("float32")
        p *= self.scale
        if self.float_mask is not None:
            p += _rows_of(self.float_mask, rows, p.ndim)
        if self.bool_mask is not None:                                     # in place, the mask broadcast
            xp.copyto(p, float("-inf"), where=_rows_of(self.bool_mask, rows, p.ndim))
        c = stable_shift(p, -1)                                            # (rows, ..., T, 1), 0 where all masked
        p -= c
        xp.exp(p, out=p)
        z = p.sum(axis=-1, keepdims=True)                                  # (rows, ..., T, 1)
        p /= xp.where(z == 0, 1, z)                                        # a masked row: P = 0
        return p                                                           # (rows, ..., T, S)

    def _output_array(self, q, v):
        """The array O is written into, (..., T, d_v). Heads (B, h, T, d_v) are given
        (B, T, h, d_v) memory, returned as its transposed view: joining the heads
        (transpose(0, 2, 1, 3).reshape(B, T, h d_v), nn/multihead_attention.py) is
        then a view, not a copy of O."""
        xp = get_array_module(v)
        if q.ndim != 4:
            return xp.empty(q.shape[:-1] + v.shape[-1:], dtype=v.dtype)   # (..., T, d_v)
        B, h, T, _ = q.shape
        return xp.empty((B, T, h, v.shape[-1]), dtype=v.dtype).transpose(0, 2, 1, 3)  # (B, h, T, d_v)

    def _dropped(self, p, rows):
        """P' = P (.) m / (1 - p_drop), as ``dropout`` computes it; P itself without dropout."""
        if self.keep is None:
            return p
        return p * _rows_of(self.keep, rows, p.ndim) * self.keep_scale


def _rows_of(mask, rows, ndim):
    """The part of a mask broadcastable to P (..., T, S) that meets P's rows ``rows`` of
    its leading axis: the mask itself where it has no such axis of its own."""
    if rows is Ellipsis or mask.ndim < ndim or mask.shape[0] == 1:
        return mask
    return mask[rows]


def attention_core_fused(q, k, v, scale, bool_mask=None, float_mask=None, dropout_p=0.0,
                         need_weights=True):
    """(O, P') of the module docstring for q, k, v of one leading (batch, head) shape, or
    O alone when ``need_weights`` is False; the masks are backend arrays broadcastable to
    (..., T, S), or None. ``dropout_p`` > 0 draws the keep-mask m (..., T, S) from the
    backend's rng (``dropout_mask``). ``attention_core`` (minigrad/nn/scaled_dot_product.py)
    checks the inputs and calls this; its oracle is ``attention_core_composed`` in the
    same file."""
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"attention_core_fused: q, k and v need one leading shape, got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    keep = None
    if dropout_p > 0.0:
        keep = dropout_mask(q, dropout_p, shape=q.shape[:-1] + k.shape[-2:-1])   # (..., T, S)
    return AttentionCore(scale, bool_mask, float_mask, keep, keep_scale(dropout_p),
                         need_weights)(q, k, v)
