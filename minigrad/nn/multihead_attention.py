"""``MultiheadAttention`` (Vaswani et al., 2017, "Attention Is All You Need", §3.2.2).

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
    head_i             = Attention(Q W_i^Q, K W_i^K, V W_i^V)
    Attention(q, k, v) = softmax(q k^T / sqrt(d_k) + M) v          (scaled_dot_product.py)

Glossary: E = embed_dim = d_model, h = num_heads, d_k = d_v = E / h. The equations
are the paper's, in its layout (a row vector times a matrix): W_i^Q, W_i^K, W_i^V
are (E, d_k), W^O is (h d_v, E) = (E, E). The parameters are PyTorch's, in
``Linear``'s layout (y = x W^T + b): each stored matrix is the paper's transposed,
and the biases are PyTorch's addition (the paper has none). The class docstring
maps one onto the other.
"""

from minigrad import creation
from minigrad.nn import init
from minigrad.nn.functional import linear
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.nn.scaled_dot_product import attention_core, causal_mask
from minigrad.ops import concatenate, split
from minigrad.tensor import as_tensor

__all__ = ["MultiheadAttention", "KVCache"]


class KVCache:
    """Projected keys and values of one attention layer, kept between decoding steps.

    ``static=True``: keys and values of a fixed memory (the encoder output), projected
    at the first call and reused. ``static=False``: self-attention over a growing
    prefix: each call appends its keys and values along the length axis.
    k, v: (B, h, S, d_k).
    """

    def __init__(self, static):
        self.static = static
        self.k = self.v = None

    def update(self, k, v):
        """Store the new keys/values (appended unless static); return the whole cache."""
        if not self.static and self.k is not None:
            k = concatenate([self.k, k], axis=2)                    # (B, h, S_past + S, d_k)
            v = concatenate([self.v, v], axis=2)
        self.k, self.v = k, v
        return k, v

    def select(self, index):
        """Keep batch rows ``index`` (beam search reorders hypotheses)."""
        if self.k is not None:
            self.k, self.v = self.k[index], self.v[index]


class MultiheadAttention(Module):
    """h attention heads in parallel on learned projections of the queries, keys and values.

    >>> import minigrad as mg
    >>> mha = mg.nn.MultiheadAttention(embed_dim=16, num_heads=4)
    >>> x = mg.randn(2, 5, 16)
    >>> out, weights = mha(x, x, x)                    # self-attention
    >>> out.shape, weights.shape                       # weights averaged over the heads
    ((2, 5, 16), (2, 5, 5))

    The paper's h projections W_i^Q (E, d_k), side by side, are one (E, E) matrix
    W^Q = [W_1^Q | ... | W_h^Q] (column block i is head i's). PyTorch stores its
    transpose W_q = (W^Q)^T, in which head i's block is rows i d_k : (i + 1) d_k, and
    packs the three (Q, K, V) into one parameter, as here:

        in_proj_weight  (3E, E) = [W_q; W_k; W_v] = [(W^Q)^T; (W^K)^T; (W^V)^T]
                                  (rows 0:E, E:2E, 2E:3E)
        in_proj_bias    (3E,)   = [b_q; b_k; b_v]
        out_proj.weight (E, E)  = (W^O)^T;  out_proj.bias (E,) = b_o

    so the projected queries query W_q^T + b_q = query W^Q + b_q are (B, T, E), and
    their columns i d_k : (i + 1) d_k are head i's, query W_i^Q (plus its bias slice);
    likewise keys and values; the output is Concat(heads) W_o^T + b_o, the paper's
    Concat(heads) W^O plus a bias. (The paper's Q, K, V are this layer's inputs
    query, key, value.)

    Masks (one convention in minigrad, ``torch.nn.MultiheadAttention``'s): a boolean
    mask is True where attention is NOT allowed, a float mask is added to the scores.

    Shapes (batch_first=True, the default here; False puts the length first):
        query (B, T, E); key (B, S, E); value (B, S, E)
        key_padding_mask (B, S): True at padded keys
        attn_mask (T, S) or (B * h, T, S)
        output (B, T, E)
        weights (B, T, S) averaged over heads, or (B, h, T, S) with
        ``average_attn_weights=False``; None with ``need_weights=False``

    Initialization (PyTorch's): in_proj_weight Xavier-uniform, in_proj_bias and
    out_proj.bias zero, out_proj.weight as any Linear.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=True):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got "
                             f"embed_dim={embed_dim}, num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible "
                             f"by num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(creation.zeros(3 * embed_dim, embed_dim))
        if bias:
            self.in_proj_bias = Parameter(creation.zeros(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False, cache=None):
        """Attend from ``query`` to ``key``/``value``; returns (output, weights or None).

        ``cache`` (a ``KVCache``, for step-by-step decoding, not in PyTorch) keeps the
        projected keys and values between calls: a static cache projects a fixed
        memory once; a growing one appends each step's keys and values, so step t
        attends to steps 0..t without projecting them again.
        """
        if not self.batch_first:                     # (T, B, E) -> (B, T, E), one swap per tensor
            key_is_value, query_is_key = key is value, query is key
            query = query.swapaxes(0, 1)
            key = query if query_is_key else key.swapaxes(0, 1)
            value = key if key_is_value else value.swapaxes(0, 1)
        self._check(query, key, value)
        B, T, E = query.shape

        # 1. Project: Q = query W_q^T + b_q, and so on (one matmul for self-attention),
        # 2. and split E into h heads of d_k: (B, L, E) -> (B, h, L, d_k).
        if cache is not None and cache.static and cache.k is not None:
            q = self._split_heads(self.project_query(query))         # (B, h, T, d_k)
            k, v = cache.k, cache.v                                  # (B, h, S, d_k), computed before
        else:
            q, k, v = self.in_projection(query, key, value)         # (B, T|S|S, E)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            if cache is not None:
                k, v = cache.update(k, v)                           # (B, h, S_past + S, d_k)
        S = k.shape[2]

        # 3-5. Scores scaled by 1/sqrt(d_k) (attention_core sets it, and says why), the
        # per-query attn_mask and the padded keys masked, softmax over the keys, dropout
        # on the weights, and the weighted sum of the values, per head: the fused
        # attention core (scaled_dot_product.py::attention_core).
        if is_causal and attn_mask is None:
            # With a growing cache the T new queries come after S - T cached steps.
            past = S - T if cache is not None and not cache.static else 0
            attn_mask = causal_mask(T, S, query, offset=past)         # (T, S)
        masks = [(self._attn_mask(attn_mask, B, T, S), "attn_mask")]
        if key_padding_mask is not None:
            masks.append((self._padding_mask(key_padding_mask, query, B, S), "key_padding_mask"))
        heads, weights = attention_core(q, k, v, masks, dropout_p=self.dropout,
                                        training=self.training,
                                        need_weights=need_weights)  # (B, h, T, d_k), (B, h, T, S) or None

        # 6. Concatenate the heads and mix them: Concat(head_1..h) W^O = Concat(...) W_o^T + b_o.
        heads = heads.transpose(0, 2, 1, 3).reshape(B, T, E)        # (B, T, E)
        output = self.out_proj(heads)                               # (B, T, E)

        if not self.batch_first:
            output = output.swapaxes(0, 1)                          # (T, B, E)
        if not need_weights:
            return output, None
        if average_attn_weights:
            weights = weights.mean(axis=1)                          # (B, T, S)
        return output, weights

    def in_projection(self, query, key, value):
        """(Q, K, V) = (query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v), with
        W_q, W_k, W_v the row blocks of ``in_proj_weight`` (the paper's W^Q, W^K, W^V
        transposed).

        Self-attention (query, key and value one tensor) is one (3E, E) matmul; for
        encoder-decoder attention (key is value) K and V share one (2E, E) matmul.
        """
        E = self.embed_dim
        W, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            return split(linear(query, W, b), 3, axis=-1)           # 3 x (B, T, E)
        W_q, W_kv = split(W, [E], axis=0)                           # (E, E), (2E, E)
        b_q, b_kv = split(b, [E], axis=0) if b is not None else (None, None)
        q = linear(query, W_q, b_q)                                 # (B, T, E)
        if key is value:
            k, v = split(linear(key, W_kv, b_kv), 2, axis=-1)       # 2 x (B, S, E)
            return q, k, v
        W_k, W_v = split(W_kv, 2, axis=0)                           # (E, E) each
        b_k, b_v = split(b_kv, 2, axis=0) if b is not None else (None, None)
        return q, linear(key, W_k, b_k), linear(value, W_v, b_v)

    def project_query(self, query):
        """Q = query W_q^T + b_q alone: (B, T, E)."""
        E = self.embed_dim
        W_q = self.in_proj_weight[:E]                               # (E, E)
        b_q = self.in_proj_bias[:E] if self.in_proj_bias is not None else None
        return linear(query, W_q, b_q)                              # (B, T, E)

    def _split_heads(self, x):
        B, L, _ = x.shape
        return x.reshape(B, L, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)   # (B, h, L, d_k)

    def _check(self, query, key, value):
        E = self.embed_dim
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.ndim != 3 or x.shape[-1] != E:
                raise ValueError(f"MultiheadAttention: expected {name} of shape (B, L, {E}) "
                                 f"(batch_first={self.batch_first}), got {x.shape}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"MultiheadAttention: query {query.shape}, key {key.shape} and value "
                             f"{value.shape} must share the batch, and key and value the length")

    def _attn_mask(self, attn_mask, B, T, S):
        """attn_mask (T, S) or (B*h, T, S) -> broadcastable to the scores (B, h, T, S)."""
        if attn_mask is None:
            return None
        attn_mask = as_tensor(attn_mask)
        h = self.num_heads
        if attn_mask.shape == (T, S):
            return attn_mask
        if attn_mask.shape == (B * h, T, S):
            return attn_mask.reshape(B, h, T, S)
        raise ValueError(f"MultiheadAttention: expected attn_mask of shape ({T}, {S}) or "
                         f"({B * h}, {T}, {S}), got {attn_mask.shape}")

    @staticmethod
    def _padding_mask(key_padding_mask, like, B, S):
        """key_padding_mask (B, S) -> (B, 1, 1, S), the same for every head and query."""
        key_padding_mask = as_tensor(key_padding_mask, like=like)
        if key_padding_mask.shape != (B, S):
            raise ValueError(f"MultiheadAttention: expected key_padding_mask of shape ({B}, {S}), "
                             f"got {key_padding_mask.shape}")
        return key_padding_mask.reshape(B, 1, 1, S)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
