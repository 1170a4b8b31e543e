"""The Transformer sequence-to-sequence model (Vaswani et al., 2017, "Attention Is
All You Need", arXiv:1706.03762), read top to bottom:

    1. embed:   E_src[src] * sqrt(D) + PE,  dropout              (§3.4, §3.5)
    2. encode:  N encoder layers over the source, padding masked
    3. decode:  N decoder layers over the target prefix (causal) and the memory
    4. project: logits = decoder output W_out^T + b   (W_out tied to E_tgt if asked, §3.4)

The masks are built in one place, ``masks()``: the source padding (for the encoder's
self-attention and the decoder's memory attention), and the target's causal mask
plus its padding.

Why scale the embeddings by sqrt(D) (§3.4): the embedding entries start at
N(0, 1/D), as in the reference implementations (tensor2tensor, fairseq), the scale an
output layer sharing them needs; times sqrt(D) they are of unit size, like the
positional encoding's entries in [-1, 1], so neither drowns the other. (With
PyTorch's Embedding default, N(0, 1), times sqrt(D) the positions would be ~sqrt(D)
times weaker than the tokens, and a model that must copy digits by position, as in
the date task, learns slowly.)
"""
import math

from minigrad import nn
from minigrad.nn.scaled_dot_product import causal_mask
from models.interface import padding_mask

__all__ = ["TransformerSeq2Seq"]


class TransformerSeq2Seq(nn.Module):
    """Shapes: src (B, S), tgt_in (B, T) token ids -> logits (B, T, V_tgt).

    >>> import minigrad as mg
    >>> from models.transformer import TransformerSeq2Seq
    >>> model = TransformerSeq2Seq(src_vocab=20, tgt_vocab=30, d_model=16, nhead=4,
    ...                            num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    >>> src, tgt_in = mg.Tensor([[5, 6, 7, 0]]), mg.Tensor([[1, 9, 10]])
    >>> logits, weights = model(src, [3], tgt_in)
    >>> logits.shape, weights                           # weights only when keep_attention is set
    ((1, 3, 30), None)
    >>> model.keep_attention = True
    >>> [w.shape for w in model(src, [3], tgt_in)[1]]  # per decoder layer: (B, h, T, S)
    [(1, 4, 3, 4)]

    Attention weights (for plots): ``forward`` and ``step`` return, per decoder
    layer, the memory-attention weights (B, h, T, S) when ``keep_attention`` is set.
    """

    def __init__(self, src_vocab, tgt_vocab, d_model=128, nhead=4, num_encoder_layers=2,
                 num_decoder_layers=2, dim_feedforward=512, dropout=0.1, activation="relu",
                 norm_first=False, tie_embeddings=False, pad_id=0, max_len=512):
        super().__init__()
        self.d_model, self.pad_id = d_model, pad_id
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        for embedding in (self.src_embed, self.tgt_embed):         # N(0, 1/D): see the module docstring
            nn.init.normal_(embedding.weight, std=d_model ** -0.5)
            embedding.weight.data[pad_id] = 0
        self.positions = nn.PositionalEncoding(d_model, max_len=max_len, dropout=dropout)
        self.transformer = nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                          dim_feedforward, dropout, activation, norm_first=norm_first)
        self.generator = nn.Linear(d_model, tgt_vocab, bias=True)
        self.tie_embeddings = tie_embeddings
        if tie_embeddings:
            self.generator.weight = self.tgt_embed.weight       # one (V, D) matrix, §3.4
        self.keep_attention = False

    # -- pieces ---------------------------------------------------------------
    def embed(self, embedding, tokens, start=0):
        x = embedding(tokens) * math.sqrt(self.d_model)                    # (B, L, D)
        return self.positions(x, start=start)                              # (B, L, D)

    def masks(self, src, src_lengths, tgt_in=None, tgt_lengths=None):
        """The masks, in one place: source padding (B, S); target causal (T, T) and
        padding (B, T). Boolean: True where attention is not allowed."""
        src_padding = padding_mask(src_lengths, src.shape[1], src)         # (B, S)
        if tgt_in is None:
            return src_padding, None, None
        T = tgt_in.shape[1]
        causal = causal_mask(T, T, tgt_in)                                 # (T, T)
        tgt_padding = padding_mask(tgt_lengths, T, tgt_in) if tgt_lengths is not None else None
        return src_padding, causal, tgt_padding

    def project(self, h):
        return self.generator(h)                                           # (B, T, V)

    def _memory_attention_weights(self):
        """Per decoder layer, the weights (B, h, T, S) it kept, or None unless ``keep_attention``."""
        if not self.keep_attention:
            return None
        return [layer.memory_attention_weights for layer in self.transformer.decoder.layers]

    # -- the interface (models/interface.py) ----------------------------------
    def forward(self, src, src_lengths, tgt_in, tgt_lengths=None):
        """Teacher forcing: logits (B, T, V) for every target position, and the memory-attention
        weights (per layer (B, h, T, S), or None)."""
        self._set_keep_attention()
        src_padding, causal, tgt_padding = self.masks(src, src_lengths, tgt_in, tgt_lengths)
        memory = self.transformer.encoder(self.embed(self.src_embed, src),
                                          src_key_padding_mask=src_padding)          # (B, S, D)
        h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory,
                                     tgt_mask=causal, tgt_key_padding_mask=tgt_padding,
                                     memory_key_padding_mask=src_padding)           # (B, T, D)
        return self.project(h), self._memory_attention_weights()                    # (B, T, V)

    def encode(self, src, src_lengths):
        src_padding, _, _ = self.masks(src, src_lengths)
        memory = self.transformer.encoder(self.embed(self.src_embed, src),
                                          src_key_padding_mask=src_padding)          # (B, S, D)
        return {"memory": memory, "src_padding": src_padding}

    def start(self, encoded):
        """The decoder's state: each layer's key/value cache and the next position."""
        return {"cache": self.transformer.decoder.new_cache(), "position": 0}

    def step(self, encoded, state, tokens):
        """One step: the new token attends to the cached prefix; nothing is recomputed."""
        self._set_keep_attention()
        x = self.embed(self.tgt_embed, tokens.reshape(-1, 1), start=state["position"])  # (B, 1, D)
        h = self.transformer.decoder(x, encoded["memory"],
                                     memory_key_padding_mask=encoded["src_padding"],
                                     cache=state["cache"])                           # (B, 1, D)
        logits = self.project(h)[:, 0]                                               # (B, V)
        weights = self._memory_attention_weights()
        if weights is not None:
            weights = [a[:, :, 0] for a in weights]                                  # (B, h, S) per layer
        return logits, {"cache": state["cache"], "position": state["position"] + 1}, weights

    def select(self, encoded, state, index):
        encoded = {"memory": encoded["memory"][index], "src_padding": encoded["src_padding"][index]}
        if state is not None:
            for layer_cache in state["cache"]:
                for kv in layer_cache.values():
                    kv.select(index)
        return encoded, state

    def _set_keep_attention(self):
        for layer in self.transformer.decoder.layers:
            layer.keep_attention = self.keep_attention
