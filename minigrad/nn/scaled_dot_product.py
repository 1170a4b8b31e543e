"""Scaled dot-product attention (Vaswani et al., 2017, "Attention Is All You Need", §3.2.1).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Q (..., T, d_k) queries, K (..., S, d_k) keys, V (..., S, d_v) values; the leading
axes (batch, heads) broadcast. M is the mask: minigrad follows
``torch.nn.MultiheadAttention`` everywhere, so a **boolean** mask is True where
attention is NOT allowed (those scores become -inf, their weights exactly 0), and a
**float** mask is added to the scores. (PyTorch's own
``F.scaled_dot_product_attention`` reads booleans the other way round; minigrad
keeps one convention.) A query row with every key masked attends to nothing: its
weights are all 0 and its output 0, as in PyTorch's function (minigrad's softmax
gives 0 for a row of -inf).
"""
import math

from minigrad.backend import get_array_module
from minigrad.ops import dropout, matmul, softmax, swapaxes, where
from minigrad.ops._util import as_floats
from minigrad.ops.nn_attention import attention_fused
from minigrad.tensor import Tensor, as_tensor

__all__ = ["scaled_dot_product_attention", "attention", "attention_composed", "attention_weights",
           "causal_mask", "apply_attention_mask"]


def causal_mask(T, S, like, offset=0):
    """Boolean (T, S), True where key s lies in query t's future: s > t + offset.

    ``offset`` is the number of earlier positions the keys hold before the first
    query (S - T when decoding with a cache of S - T past steps); 0 aligns the
    first query with the first key, as PyTorch's ``is_causal``.
    """
    xp = get_array_module(like.data)
    return Tensor(xp.triu(xp.ones((T, S), dtype=bool), k=1 + offset))


def apply_attention_mask(scores, mask, name="attn_mask"):
    """scores with a boolean mask (True -> -inf) or a float mask (added) applied."""
    if mask is None:
        return scores
    mask = _checked_mask(mask, scores.shape, scores, name)
    if mask.dtype.kind == "b":
        return where(mask, float("-inf"), scores)
    return scores + Tensor(mask.data.astype(scores.dtype, copy=False))


def _checked_mask(mask, scores_shape, like, name):
    """``mask`` as a Tensor, checked: boolean or float, broadcastable to the scores."""
    mask = as_tensor(mask, like=like)
    if not _broadcasts_to(mask.shape, scores_shape):
        raise ValueError(f"{name} of shape {mask.shape} does not broadcast to the "
                         f"attention scores of shape {scores_shape}")
    if mask.dtype.kind not in "bf":
        raise TypeError(f"{name}: expected a boolean or float mask, got dtype {mask.dtype}")
    return mask


def attention_weights(q, k, attn_mask=None, is_causal=False, scale=None):
    """softmax(Q K^T * scale + M) over the keys: (..., T, S), each row sums to 1."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: queries and keys need one width d_k, "
                         f"got q {q.shape} and k {k.shape}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
    T, S, d_k = q.shape[-2], k.shape[-2], q.shape[-1]
    # Why sqrt(d_k): for q, k with independent unit-variance entries, q . k is a sum
    # of d_k unit-variance terms, so its variance is d_k. Dividing by sqrt(d_k) keeps
    # the scores at unit scale, so softmax does not saturate into one-hot rows whose
    # gradients vanish (§3.2.1).
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = matmul(q, swapaxes(k, -2, -1)) * scale              # (..., T, S)
    if is_causal:
        attn_mask = causal_mask(T, S, q)                         # (T, S)
    scores = apply_attention_mask(scores, attn_mask)
    return softmax(scores, axis=-1)                              # (..., T, S)


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, training=True):
    """softmax(Q K^T / sqrt(d_k) + M) V.

    Args:
        q: (..., T, d_k); k: (..., S, d_k); v: (..., S, d_v).
        attn_mask: boolean (True = not allowed) or float (added), broadcastable to (..., T, S).
        dropout_p: dropout on the attention weights (when ``training``).
        is_causal: mask keys s > t (a square causal mask); not with ``attn_mask``.
        scale: the score scale, 1 / sqrt(d_k) when None.

    Returns:
        (..., T, d_v).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: queries and keys need one width d_k, "
                         f"got q {q.shape} and k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: keys and values need one length S, "
                         f"got k {k.shape} and v {v.shape}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
    if is_causal:
        attn_mask = causal_mask(q.shape[-2], k.shape[-2], q)         # (T, S)
    out, _ = attention(q, k, v, [(attn_mask, "attn_mask")], scale, dropout_p, training)
    return out                                                       # (..., T, d_v)


def attention(q, k, v, masks=(), scale=None, dropout_p=0.0, training=True):
    """(O, P): O = dropout(P) V with P = softmax(Q K^T * scale + M), M from ``masks``,
    a list of (mask or None, name). Shapes: O (..., T, d_v), P (..., T, S).

    The fused op (``minigrad/ops/nn_attention.py``, one backward for the whole core)
    does the work unless the weights get dropout or q, k, v differ in their leading
    shape; then ``attention_composed``, its readable reference, does.
    """
    q, k, v = as_floats(q, k, v)          # integers: the float one's dtype, or float32
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dropping = training and dropout_p > 0.0
    if dropping or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return attention_composed(q, k, v, masks, scale, dropout_p, training)
    scores_shape = q.shape[:-1] + (k.shape[-2],)                     # (..., T, S)
    bool_mask, float_mask = _mask_arrays(masks, scores_shape, q)
    return attention_fused(q, k, v, scale, bool_mask, float_mask)


def attention_composed(q, k, v, masks=(), scale=None, dropout_p=0.0, training=True):
    """The attention core from primitive ops: the reference of the fused one."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = matmul(q, swapaxes(k, -2, -1)) * scale                  # (..., T, S)
    for mask, name in masks:
        scores = apply_attention_mask(scores, mask, name)
    weights = dropout(softmax(scores, axis=-1), dropout_p, training)  # (..., T, S)
    return matmul(weights, v), weights                               # (..., T, d_v)


def _mask_arrays(masks, scores_shape, like):
    """The masks as two backend arrays: every boolean one OR-ed, every float one summed."""
    bool_mask = float_mask = None
    for mask, name in masks:
        if mask is None:
            continue
        mask = _checked_mask(mask, scores_shape, like, name)
        if mask.dtype.kind == "b":
            bool_mask = mask.data if bool_mask is None else bool_mask | mask.data
        else:
            values = mask.data.astype(like.dtype, copy=False)
            float_mask = values if float_mask is None else float_mask + values
    return bool_mask, float_mask


def _broadcasts_to(shape, target):
    """Whether an array of ``shape`` broadcasts to ``target`` (NumPy's rules)."""
    if len(shape) > len(target):
        return False
    return all(m in (1, t) for m, t in zip(shape[::-1], target[::-1]))
