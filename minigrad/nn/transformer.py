"""The Transformer (Vaswani et al., 2017, "Attention Is All You Need",
arXiv:1706.03762), with the arguments, defaults and parameter names of
``torch.nn.Transformer`` so that its ``state_dict`` loads here.

One encoder layer, post-norm (the paper's, ``norm_first=False``) and pre-norm
(``norm_first=True``; Xiong et al., 2020, arXiv:2002.04745 — trains without
warm-up and is the usual choice for deep stacks):

    post-norm:  x = LayerNorm(x + SelfAttn(x));       x = LayerNorm(x + FFN(x))
    pre-norm:   x = x + SelfAttn(LayerNorm(x));       x = x + FFN(LayerNorm(x))
    FFN(x)      = W_2 dropout(act(W_1 x + b_1)) + b_2          act = relu or gelu

Each sub-layer's output passes a dropout before the residual sum (§5.4). A decoder
layer has a third sub-layer between the two, attention over the encoder's output
("memory"): queries from the decoder, keys and values from the memory.

Glossary: D = d_model, h = nhead, F = dim_feedforward, N = number of layers;
B batch, S source length, T target length.
"""
import copy

from minigrad import backend as _backend
from minigrad.nn import init
from minigrad.nn.dropout import Dropout
from minigrad.nn.functional import gelu, relu
from minigrad.nn.layer_norm import LayerNorm
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module, ModuleList
from minigrad.nn.multihead_attention import KVCache, MultiheadAttention
from minigrad.tensor import Tensor

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer"]

_ACTIVATIONS = {"relu": relu, "gelu": gelu}


def _activation(activation):
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(f"Transformer: activation must be one of {sorted(_ACTIVATIONS)} "
                         f"or a function, got {activation!r}")
    return _ACTIVATIONS[activation]


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward network, each with residual, dropout, LayerNorm.

    >>> import minigrad as mg
    >>> layer = mg.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> layer(mg.randn(2, 5, 16)).shape
    (2, 5, 16)

    Shapes (batch_first=True): src (B, S, D) -> (B, S, D); src_mask (S, S) or
    (B * h, S, S); src_key_padding_mask (B, S), True at padding.

    Parameters: self_attn.(in_proj_weight (3D, D), in_proj_bias (3D,), out_proj),
    linear1 (F, D), linear2 (D, F), norm1, norm2 (D,).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=True, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src                                                                   # (B, S, D)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x                                                                  # (B, S, D)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                              need_weights=False, is_causal=is_causal)
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))         # (B, S, F) -> (B, S, D)
        return self.dropout2(x)


class TransformerDecoderLayer(Module):
    """Masked self-attention, attention over the memory, and a feed-forward network.

    >>> import minigrad as mg
    >>> layer = mg.nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> causal = mg.nn.Transformer.generate_square_subsequent_mask(3)
    >>> tgt, memory = mg.randn(2, 3, 16), mg.randn(2, 5, 16)
    >>> layer(tgt, memory, tgt_mask=causal).shape
    (2, 3, 16)

    Shapes (batch_first=True): tgt (B, T, D), memory (B, S, D) -> (B, T, D);
    tgt_mask (T, T) (causal: ``Transformer.generate_square_subsequent_mask(T)``),
    memory_mask (T, S); tgt_key_padding_mask (B, T); memory_key_padding_mask (B, S).

    Parameters: self_attn, multihead_attn (each in_proj_weight (3D, D), in_proj_bias,
    out_proj), linear1 (F, D), linear2 (D, F), norm1, norm2, norm3 (D,).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=True, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)
        # When True, each forward keeps the memory-attention weights (B, h, T, S) in
        # ``self.memory_attention_weights`` for plots; off by default, as it costs memory.
        self.keep_attention = False
        self.memory_attention_weights = None

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False,
                cache=None):
        """``cache`` (from ``new_cache()``; not in PyTorch) is for decoding one step at a
        time: tgt is then only the new positions, the self-attention attends to them and
        to every earlier step kept in the cache, and the memory's keys and values are
        projected once. Without a cache, tgt is the whole prefix (training)."""
        self_cache = cache["self"] if cache is not None else None
        memory_cache = cache["memory"] if cache is not None else None
        x = tgt                                                                   # (B, T, D)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal,
                                   self_cache)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal, memory_cache)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal,
                                              self_cache))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal, memory_cache))
            x = self.norm3(x + self._ff_block(x))
        return x                                                                  # (B, T, D)

    @staticmethod
    def new_cache():
        """An empty decoding cache: growing self-attention keys/values, static memory ones."""
        return {"self": KVCache(static=False), "memory": KVCache(static=True)}

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, cache):
        x, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                              need_weights=False, is_causal=is_causal, cache=cache)
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal, cache):
        x, weights = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                         key_padding_mask=key_padding_mask,
                                         need_weights=self.keep_attention, is_causal=is_causal,
                                         average_attn_weights=False, cache=cache)
        self.memory_attention_weights = weights
        return self.dropout2(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))         # (B, T, F) -> (B, T, D)
        return self.dropout3(x)


class TransformerEncoder(Module):
    """N copies of an encoder layer (``layers.0`` ... ``layers.N-1``), then ``norm`` if given.

    >>> import minigrad as mg
    >>> layer = mg.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> encoder = mg.nn.TransformerEncoder(layer, num_layers=2, norm=mg.nn.LayerNorm(16))
    >>> encoder(mg.randn(2, 5, 16)).shape
    (2, 5, 16)

    Each copy starts with the given layer's weights (a deep copy, as PyTorch).
    Shapes: src (B, S, D) -> (B, S, D).
    """

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """N copies of a decoder layer (``layers.0`` ... ``layers.N-1``), then ``norm`` if given.

    >>> import minigrad as mg
    >>> layer = mg.nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
    >>> decoder = mg.nn.TransformerDecoder(layer, num_layers=2)
    >>> decoder(mg.randn(2, 3, 16), mg.randn(2, 5, 16)).shape
    (2, 3, 16)

    Shapes: tgt (B, T, D), memory (B, S, D) -> (B, T, D).
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False,
                cache=None):
        """``cache``: a list from ``new_cache()`` for step-by-step decoding (see the layer)."""
        x = tgt
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal,
                      cache=cache[i] if cache is not None else None)
        return self.norm(x) if self.norm is not None else x

    def new_cache(self):
        """One empty decoding cache per layer."""
        return [layer.new_cache() for layer in self.layers]


class Transformer(Module):
    """The encoder-decoder Transformer: ``encoder`` (N layers + final LayerNorm) and
    ``decoder`` (N layers + final LayerNorm), as ``torch.nn.Transformer``.

    >>> import minigrad as mg
    >>> model = mg.nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1,
    ...                           num_decoder_layers=1, dim_feedforward=32)
    >>> src, tgt = mg.randn(2, 5, 16), mg.randn(2, 3, 16)      # embedded sequences
    >>> model(src, tgt, tgt_mask=model.generate_square_subsequent_mask(3)).shape
    (2, 3, 16)

    It takes embedded sequences and returns the decoder's output; the embeddings,
    positional encoding and output projection belong to the model that uses it.
    All matrices (every parameter of 2 or more dims) are Xavier-uniform
    initialized, as PyTorch's ``_reset_parameters``.

    Shapes (batch_first=True):
        src (B, S, D), tgt (B, T, D) -> output (B, T, D)
        src_mask (S, S); tgt_mask (T, T); memory_mask (T, S)
        src_key_padding_mask (B, S); tgt_key_padding_mask (B, T);
        memory_key_padding_mask (B, S) (usually the source padding)
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=True, norm_first=False,
                 bias=True):
        super().__init__()
        layer_args = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                          layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                          norm_first=norm_first, bias=bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **layer_args),
                                              num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **layer_args),
                                              num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=False, tgt_is_causal=False,
                memory_is_causal=False):
        batch_axis = 0 if self.batch_first else 1
        if src.shape[batch_axis] != tgt.shape[batch_axis]:
            raise ValueError(f"Transformer: src and tgt must have one batch size, got "
                             f"src {src.shape} and tgt {tgt.shape} (batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: src and tgt need feature size d_model={self.d_model}, "
                             f"got src {src.shape} and tgt {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)                            # (B, S, D)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)                    # (B, T, D)

    @staticmethod
    def generate_square_subsequent_mask(sz, dtype="float32", backend=None):
        """The causal mask (sz, sz) as PyTorch makes it: 0 on and below the diagonal,
        -inf above, so position t attends to positions 0..t only. A float mask: it is
        added to the scores."""
        xp = (_backend.backend_by_name(backend) if backend else _backend.current_backend()).xp
        above = xp.triu(xp.ones((sz, sz), dtype=bool), k=1)                      # (sz, sz)
        return Tensor(xp.where(above, float("-inf"), 0.0).astype(dtype))
