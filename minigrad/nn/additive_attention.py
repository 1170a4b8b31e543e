"""``AdditiveAttention``: Bahdanau attention for an RNN encoder-decoder
(Bahdanau, Cho & Bengio, 2014, "Neural Machine Translation by Jointly Learning to
Align and Translate", arXiv:1409.0473, §3.1 and appendix A.1.2).

Also the two steps every seq2seq attention shares, used by ``LuongAttention``
too: checking the inputs (``check_inputs``) and turning scores into weights and a
context (``attend``).
"""
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.nn.scaled_dot_product import apply_attention_mask
from minigrad.ops import matmul, softmax, tanh
from minigrad.tensor import as_tensor

__all__ = ["AdditiveAttention", "check_inputs", "attend"]


class AdditiveAttention(Module):
    """Additive (Bahdanau) attention: a small feed-forward net scores each key.

        e_s   = v_a^T tanh(W_q q + W_k k_s + b)        score of key s for query q
        a_s   = exp(e_s) / sum_s' exp(e_s')             attention weight (softmax over s)
        c     = sum_s a_s m_s                           context vector

    >>> import minigrad as mg
    >>> attention = mg.nn.AdditiveAttention(query_size=8, key_size=6, hidden_size=10)
    >>> context, weights = attention(mg.randn(3, 8), mg.randn(3, 5, 6))   # one decoder step
    >>> context.shape, weights.shape
    ((3, 6), (3, 5))
    >>> weights.numpy().sum(axis=-1).round(5).tolist()                     # a distribution per query
    [1.0, 1.0, 1.0]

    Glossary (the paper's names in brackets):
        q      the query: the decoder state asking where to look [s_{i-1}]
        k_s    key s: the encoder state at source position s [h_j]
        m_s    value s, the memory that is averaged (``values``): the keys
               themselves unless given [h_j again]
        W_q    ``query_proj.weight`` (H, Dq) [W_a]
        W_k, b ``key_proj.weight`` (H, Dk) and ``key_proj.bias`` (H,) [U_a]
        v_a    the score vector: ``v.weight`` (1, H) is the row v_a^T [v_a]
        a_s    the attention weight of key s [alpha_ij]; c the context [c_i]

    (The attribute keeps the short name ``v`` of PyTorch tutorials and of the saved
    ``state_dict`` key ``v.weight``; it is the score vector, never the values.)

    Choices said out loud:
        - v_a is a ``Linear(H, 1, bias=False)``, not a bare (H,) Parameter, so that
          all three weights are Linears with PyTorch's default initialization and
          the score line reads ``self.v(tanh(...))``.
        - The paper has no bias; many implementations add one to both projections.
          Two biases inside one tanh add up to one vector, so the pair would be
          redundant: only ``key_proj`` has one.

    Masking: ``key_padding_mask`` (B, S) follows minigrad's one convention
    (``torch.nn.MultiheadAttention``'s): boolean True marks a padding key, whose
    score becomes -inf and whose weight is exactly 0 (a float mask is added to the
    scores instead). A query whose every key is masked gets all-zero weights and
    a zero context.

    Precomputing the keys: the decoder calls attention once per target step, but
    the encoder states are the same at every step, and so is W_k k_s + b.
    ``project_keys(keys)`` computes it once per source sentence; pass it as
    ``projected_keys=`` at each step to skip the (B, S, Dk) x (Dk, H) product,
    the largest one in the layer.

    Args:
        query_size: Dq, the width of a query (the decoder's hidden size).
        key_size: Dk, the width of a key (the encoder's output width).
        hidden_size: H, the width of the scoring net's hidden layer.

    Shapes (B batch, S source length, T number of queries):
        query:            (B, Dq) for one decoder step, or (B, T, Dq) for T at once
        keys:             (B, S, Dk)
        values:           (B, S, Dv), the m_s; the keys when None (Dv = Dk)
        key_padding_mask: (B, S), boolean (True = padding) or float
        projected_keys:   (B, S, H), from ``project_keys(keys)``
        context:          (B, Dv) or (B, T, Dv)
        weights:          (B, S)  or (B, T, S), each row sums to 1
        query_proj.weight (H, Dq);  key_proj.weight (H, Dk), key_proj.bias (H,);
        v.weight (1, H)
    """

    def __init__(self, query_size, key_size, hidden_size):
        super().__init__()
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        self.query_proj = Linear(query_size, hidden_size, bias=False)    # W_q
        self.key_proj = Linear(key_size, hidden_size, bias=True)         # W_k, b
        self.v = Linear(hidden_size, 1, bias=False)                      # v_a^T, the score vector

    def project_keys(self, keys):
        """W_k k_s + b for every key: (B, S, Dk) -> (B, S, H). Once per source sentence."""
        check_width("AdditiveAttention", "keys", keys, 3, self.key_size)
        return self.key_proj(keys)                                       # (B, S, H)

    def forward(self, query, keys, values=None, key_padding_mask=None, projected_keys=None):
        """(context, weights) for the query or queries; see the class docstring."""
        query, values, one_step = check_inputs(self, query, keys, values, key_padding_mask)
        B, T, _ = query.shape
        S = keys.shape[1]
        projected_keys = self.project_keys(keys) if projected_keys is None \
            else check_projected(self, projected_keys, (B, S, self.hidden_size))
        projected_query = self.query_proj(query)                         # (B, T, H)
        # Every query meets every key: broadcast (B, T, 1, H) + (B, 1, S, H).
        hidden = tanh(projected_query.reshape(B, T, 1, self.hidden_size)
                      + projected_keys.reshape(B, 1, S, self.hidden_size))   # (B, T, S, H)
        scores = self.v(hidden).reshape(B, T, S)                         # (B, T, S)
        return attend(scores, values, key_padding_mask, one_step)

    def extra_repr(self):
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"


def check_inputs(layer, query, keys, values, key_padding_mask):
    """Check the shapes of a seq2seq attention call; lift a one-step query to T = 1.

    Returns (query (B, T, Dq), values (B, S, Dv), whether the query was one step).
    """
    name = type(layer).__name__
    if query.ndim not in (2, 3):
        raise ValueError(f"{name}: expected query of shape (B, {layer.query_size}) or "
                         f"(B, T, {layer.query_size}), got {query.shape}")
    check_width(name, "query", query, query.ndim, layer.query_size)
    check_width(name, "keys", keys, 3, layer.key_size)
    B, S, _ = keys.shape
    if query.shape[0] != B:
        raise ValueError(f"{name}: query and keys need one batch size, "
                         f"got query {query.shape} and keys {keys.shape}")
    values = keys if values is None else values
    if values.ndim != 3 or values.shape[:2] != (B, S):
        raise ValueError(f"{name}: expected values of shape ({B}, {S}, Dv) to match keys "
                         f"{keys.shape}, got {values.shape}")
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (B, S):
        raise ValueError(f"{name}: expected key_padding_mask of shape ({B}, {S}) "
                         f"(batch, source length), got {tuple(key_padding_mask.shape)}")
    one_step = query.ndim == 2
    if one_step:
        query = query.reshape(B, 1, layer.query_size)                    # (B, 1, Dq)
    return query, values, one_step


def check_width(name, what, x, ndim, width):
    """``x`` has ``ndim`` axes and ``width`` features on the last one."""
    if x.ndim != ndim or x.shape[-1] != width:
        expected = ("B", "T")[:ndim - 1] if what == "query" else ("B", "S")
        raise ValueError(f"{name}: expected {what} of shape ({', '.join(expected)}, {width}), "
                         f"got {x.shape}")


def check_projected(layer, projected_keys, shape):
    """``projected_keys`` has the shape ``project_keys(keys)`` would give."""
    if projected_keys.shape != shape:
        raise ValueError(f"{type(layer).__name__}: expected projected_keys of shape {shape} "
                         f"(from project_keys(keys)), got {projected_keys.shape}")
    return projected_keys


def attend(scores, values, key_padding_mask, one_step):
    """Masked softmax over the keys and the weighted average of the values.

    scores (B, T, S), values (B, S, Dv), key_padding_mask (B, S) or None ->
    context (B, T, Dv) and weights (B, T, S), without the T axis when ``one_step``.
    """
    B, T, S = scores.shape
    if key_padding_mask is not None:
        mask = as_tensor(key_padding_mask, like=scores).reshape(B, 1, S)     # (B, 1, S)
        scores = apply_attention_mask(scores, mask, name="key_padding_mask")
    weights = softmax(scores, axis=-1)                                   # (B, T, S)
    context = matmul(weights, values)                                    # (B, T, Dv)
    if one_step:
        return context.reshape(B, values.shape[-1]), weights.reshape(B, S)   # (B, Dv), (B, S)
    return context, weights
