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

The attention core, (Q, K, V, masks) -> (output, weights), has one name per role:

    attention_core            what the layers call (``scaled_dot_product_attention``,
                              ``MultiheadAttention``): checks the inputs, sets the scale,
                              runs the fused op
    AttentionCore             the fused op, one hand-derived backward
                              (minigrad/ops/nn_attention.py, called through
                              ``attention_core_fused``)
    attention_core_composed   the readable reference from primitive ops and the fused
                              op's test oracle; it also runs where q, k, v broadcast
                              their leading axes, which the fused op does not take
    attention_weights         the reference's weights alone (``F.attention_weights``)

The checks of every entry point are written once, in the helpers at the end of this
file (``_core_inputs``, which also holds the reason for 1/sqrt(d_k), ``_checked_mask``,
``_mask_or_causal``).
"""
import math

from minigrad.backend import get_array_module
from minigrad.ops import dropout, matmul, softmax, swapaxes, where
from minigrad.ops._util import as_floats
from minigrad.ops.nn_attention import attention_core_fused
from minigrad.tensor import Tensor, as_tensor

__all__ = ["scaled_dot_product_attention", "attention_core", "attention_core_composed",
           "attention_weights", "causal_mask", "apply_attention_mask"]


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
    masks = [(_mask_or_causal(attn_mask, is_causal, q, k), "attn_mask")]
    out, _ = attention_core(q, k, v, masks, scale, dropout_p, training, need_weights=False)
    return out                                                       # (..., T, d_v)


def attention_core(q, k, v, masks=(), scale=None, dropout_p=0.0, training=True,
                   need_weights=True):
    """(O, P'): O = P' V with P' = dropout(P) and P = softmax(Q K^T * scale + M), M from
    ``masks``, a list of (mask or None, name). Shapes: O (..., T, d_v), P' (..., T, S).
    ``need_weights=False`` gives (O, None): the fused op then keeps no (..., T, S) array
    beyond its forward (minigrad/ops/nn_attention.py says why).

    Checks the inputs (``_core_inputs``, ``_checked_mask``); then the fused op
    (``AttentionCore``, minigrad/ops/nn_attention.py) does the work, or, where q, k, v
    differ in their leading shape (broadcast), its readable reference
    ``attention_core_composed``.
    """
    q, k, v, scale = _core_inputs(q, k, v, scale, dropout_p)
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        out, weights = attention_core_composed(q, k, v, masks, scale, dropout_p, training)
        return out, (weights if need_weights else None)
    scores_shape = q.shape[:-1] + (k.shape[-2],)                     # (..., T, S)
    bool_mask, float_mask = _mask_arrays(masks, scores_shape, q)
    dropout_p = dropout_p if training else 0.0
    outputs = attention_core_fused(q, k, v, scale, bool_mask, float_mask, dropout_p, need_weights=need_weights)
    return outputs if need_weights else (outputs, None)         # without the weights: O alone


def attention_core_composed(q, k, v, masks=(), scale=None, dropout_p=0.0, training=True):
    """The attention core from primitive ops, (O, P') as ``attention_core``: the readable
    reference, and the test oracle of the fused op ``AttentionCore``
    (minigrad/ops/nn_attention.py, through ``attention_core_fused``).

        P  = softmax(Q K^T * scale + M)     (..., T, S)   _softmax_of_scores
        P' = dropout(P)                     (..., T, S)
        O  = P' V                           (..., T, d_v)
    """
    q, k, v, scale = _core_inputs(q, k, v, scale, dropout_p)
    weights = dropout(_softmax_of_scores(q, k, masks, scale), dropout_p, training)  # (..., T, S)
    return matmul(weights, v), weights                               # (..., T, d_v)


def attention_weights(q, k, attn_mask=None, is_causal=False, scale=None):
    """softmax(Q K^T * scale + M) over the keys: (..., T, S), each row sums to 1; the
    weights of the reference ``attention_core_composed`` (without dropout), for plots."""
    q, k, _, scale = _core_inputs(q, k, None, scale)
    masks = [(_mask_or_causal(attn_mask, is_causal, q, k), "attn_mask")]
    return _softmax_of_scores(q, k, masks, scale)                    # (..., T, S)


def _softmax_of_scores(q, k, masks, scale):
    """P = softmax(Q K^T * scale + M) from primitive ops: the reference's weights."""
    scores = matmul(q, swapaxes(k, -2, -1)) * scale                  # (..., T, S)
    for mask, name in masks:
        scores = apply_attention_mask(scores, mask, name)
    return softmax(scores, axis=-1)                                  # (..., T, S)


# -- the checks of every entry point above, each written once ----------------------------

def _core_inputs(q, k, v, scale, dropout_p=0.0):
    """q, k, v as float Tensors, checked, and the score scale: where ``attention_core``,
    its reference and ``attention_weights`` (v None: no values) all begin."""
    if v is None:
        q, k = as_floats(q, k)            # integers: the float one's dtype, or float32
    else:
        q, k, v = as_floats(q, k, v)
        if k.shape[-2] != v.shape[-2]:
            raise ValueError(f"scaled_dot_product_attention: keys and values need one length S, "
                             f"got k {k.shape} and v {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: queries and keys need one width d_k, "
                         f"got q {q.shape} and k {k.shape}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be a probability in "
                         f"[0, 1], got {dropout_p}")
    # Why 1/sqrt(d_k): for q, k with independent unit-variance entries, q . k is a sum
    # of d_k unit-variance terms, so its variance is d_k. Dividing by sqrt(d_k) keeps
    # the scores at unit scale, so softmax does not saturate into one-hot rows whose
    # gradients vanish (§3.2.1).
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return q, k, v, scale


def _mask_or_causal(attn_mask, is_causal, q, k):
    """The one mask of ``scaled_dot_product_attention`` and ``attention_weights``:
    ``attn_mask``, or with ``is_causal`` the causal mask (T, S)."""
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
    if is_causal:
        return causal_mask(q.shape[-2], k.shape[-2], q)              # (T, S)
    return attn_mask


def _checked_mask(mask, scores_shape, like, name):
    """``mask`` as a Tensor, checked: boolean or float, broadcastable to the scores."""
    mask = as_tensor(mask, like=like)
    if not _broadcasts_to(mask.shape, scores_shape):
        raise ValueError(f"{name} of shape {mask.shape} does not broadcast to the "
                         f"attention scores of shape {scores_shape}")
    if mask.dtype.kind not in "bf":
        raise TypeError(f"{name}: expected a boolean or float mask, got dtype {mask.dtype}")
    return mask


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
