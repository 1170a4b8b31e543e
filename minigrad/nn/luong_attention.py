"""``LuongAttention``: the dot, general and concat scores of Luong, Pham & Manning
(2015), "Effective Approaches to Attention-based Neural Machine Translation",
arXiv:1508.04025, §3.1 (global attention).
"""
from minigrad.nn.additive_attention import attend, check_inputs, check_projected, check_width
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.ops import matmul, swapaxes, tanh

__all__ = ["LuongAttention"]

SCORES = ("dot", "general", "concat")


class LuongAttention(Module):
    """Global attention with one of Luong's three scores (eq. 8):

        dot:      score(h_t, h_s) = h_t^T h_s
        general:  score(h_t, h_s) = h_t^T W_a h_s
        concat:   score(h_t, h_s) = v_a^T tanh(W_a [h_t; h_s])

        a_t(s) = exp(score(h_t, h_s)) / sum_s' exp(score(h_t, h_s'))    (eq. 7)
        c_t    = sum_s a_t(s) m_s                                         the context

    >>> import minigrad as mg
    >>> attention = mg.nn.LuongAttention(query_size=8, key_size=6, score="general")
    >>> keys = mg.randn(3, 5, 6)
    >>> padding = mg.Tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 5])
    >>> context, weights = attention(mg.randn(3, 8), keys, key_padding_mask=padding)
    >>> context.shape, weights.shape
    ((3, 6), (3, 5))
    >>> weights.numpy()[1, 3:].tolist()                  # padded keys get no weight
    [0.0, 0.0]

    Glossary:
        h_t    the query: the decoder's top hidden state at target step t
        h_s    key s: the encoder's top hidden state at source position s (the paper's h-bar_s)
        m_s    value s, the memory that is averaged (``values``): the keys h_s
               themselves unless given (as in the paper)
        a_t(s) the attention weight of key s; c_t the context vector

    The weights (PyTorch's ``Linear`` layout, y = x W^T):
        general: ``key_proj.weight`` is W_a, (Dq, Dk): it maps a key into the
            query's space, so the score is the dot product h_t . (W_a h_s) and
            W_a h_s can be computed once per source sentence.
        concat:  W_a is (H, Dq + Dk) and acts on the concatenation [h_t; h_s].
            Split by columns, W_a = [W_q | W_k], it is W_a [h_t; h_s] = W_q h_t + W_k h_s,
            so it is kept as two Linears without bias, ``query_proj.weight`` W_q (H, Dq)
            and ``key_proj.weight`` W_k (H, Dk), and ``v.weight`` is v_a^T, (1, H):
            the score vector (never the values).
            The split form never builds the (B, T, S, Dq + Dk) concatenation, and
            W_k h_s can be computed once. (This is Bahdanau's additive score
            without its bias; see ``AdditiveAttention``.)
        dot: no weights; needs Dq == Dk.

    Not here: Luong's attentional hidden state h~_t = tanh(W_c [c_t; h_t]) (eq. 5),
    which feeds the next word's softmax and, with input feeding, the next step.
    It belongs to the decoder, which owns W_c and h_t.

    Masking and precomputed keys work as in ``AdditiveAttention``: a boolean
    ``key_padding_mask`` is True at padding keys, which get weight exactly 0;
    ``project_keys(keys)`` gives W_a h_s (general), W_k h_s (concat) or the keys
    themselves (dot), to pass as ``projected_keys=`` at every decoder step.

    Args:
        query_size: Dq, the width of a query (the decoder's hidden size).
        key_size: Dk, the width of a key (the encoder's output width).
        score: "dot", "general" or "concat".
        hidden_size: H, the width of the concat score's hidden layer; the query
            size when None (the paper's W_a is d x 2d). Only for score="concat".

    Shapes (B batch, S source length, T number of queries):
        query:            (B, Dq) for one decoder step, or (B, T, Dq) for T at once
        keys:             (B, S, Dk)
        values:           (B, S, Dv), the m_s; the keys when None (Dv = Dk)
        key_padding_mask: (B, S), boolean (True = padding) or float
        projected_keys:   (B, S, Dk) dot, (B, S, Dq) general, (B, S, H) concat
        context:          (B, Dv) or (B, T, Dv)
        weights:          (B, S)  or (B, T, S), each row sums to 1
        general: key_proj.weight (Dq, Dk)
        concat:  query_proj.weight (H, Dq), key_proj.weight (H, Dk), v.weight (1, H)
    """

    def __init__(self, query_size, key_size, score="dot", hidden_size=None):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"LuongAttention: score must be one of {', '.join(SCORES)}; got {score!r}")
        if score == "dot" and query_size != key_size:
            raise ValueError(f"LuongAttention: score='dot' needs query_size == key_size, got "
                             f"{query_size} and {key_size}; use score='general' to map between them")
        if hidden_size is not None and score != "concat":
            raise ValueError(f"LuongAttention: hidden_size is used only by score='concat', "
                             f"got hidden_size={hidden_size} with score={score!r}")
        self.query_size, self.key_size, self.score = query_size, key_size, score
        if score == "dot":
            self.projected_size = key_size                               # the keys as they are
        elif score == "general":
            self.key_proj = Linear(key_size, query_size, bias=False)     # W_a
            self.projected_size = query_size
        else:
            self.hidden_size = query_size if hidden_size is None else hidden_size
            self.query_proj = Linear(query_size, self.hidden_size, bias=False)   # W_q
            self.key_proj = Linear(key_size, self.hidden_size, bias=False)       # W_k
            self.v = Linear(self.hidden_size, 1, bias=False)                     # v_a^T
            self.projected_size = self.hidden_size

    def project_keys(self, keys):
        """The part of the score that depends on the keys only; once per source sentence.

        (B, S, Dk) -> (B, S, Dk) dot, (B, S, Dq) general, (B, S, H) concat.
        """
        check_width("LuongAttention", "keys", keys, 3, self.key_size)
        if self.score == "dot":
            return keys
        return self.key_proj(keys)                                       # (B, S, Dq or H)

    def forward(self, query, keys, values=None, key_padding_mask=None, projected_keys=None):
        """(context, weights) for the query or queries; see the class docstring."""
        query, values, one_step = check_inputs(self, query, keys, values, key_padding_mask)
        B, T, _ = query.shape
        S = keys.shape[1]
        projected_keys = self.project_keys(keys) if projected_keys is None \
            else check_projected(self, projected_keys, (B, S, self.projected_size))
        if self.score in ("dot", "general"):
            scores = matmul(query, swapaxes(projected_keys, 1, 2))       # (B, T, S)
        else:
            H = self.hidden_size
            projected_query = self.query_proj(query)                     # (B, T, H)
            # Every query meets every key: broadcast (B, T, 1, H) + (B, 1, S, H).
            hidden = tanh(projected_query.reshape(B, T, 1, H)
                          + projected_keys.reshape(B, 1, S, H))          # (B, T, S, H)
            scores = self.v(hidden).reshape(B, T, S)                     # (B, T, S)
        return attend(scores, values, key_padding_mask, one_step)

    def extra_repr(self):
        hidden = f", hidden_size={self.hidden_size}" if self.score == "concat" else ""
        return f"query_size={self.query_size}, key_size={self.key_size}, score={self.score!r}{hidden}"
