"""GPT: a decoder-only Transformer language model (Radford et al., 2018, "Improving
Language Understanding by Generative Pre-Training"; Radford et al., 2019, "Language
Models are Unsupervised Multitask Learners", GPT-2), read top to bottom as nanoGPT's
``model.py``:

    1. embed:   x = W_te[idx] + W_pe[positions],  dropout          (B, T, D)
    2. N blocks, pre-norm (GPT-2 §2.3: the LayerNorm moved to each sub-block's input):
                x = x + dropout(Attn(LN_1(x)))       causal multi-head self-attention
                x = x + MLP(LN_2(x))                 MLP(u) = dropout(W_2 GELU(W_1 u + b_1) + b_2)
    3. final:   h = LN_f(x)                          (GPT-2 adds it after the last block)
    4. logits = h W_te^T                             (B, T, V): the output layer *is* the
                                                     token embedding (weight tying, Press &
                                                     Wolf, 2017, "Using the Output Embedding
                                                     to Improve Language Models")

Training: the logits at position t predict token t + 1, so the loss of a window of
T + 1 tokens is ``cross_entropy(model(w[:, :-1]).reshape(-1, V), w[:, 1:].reshape(-1))``.
The causal mask (key s hidden from query t when s > t) keeps position t from reading
the token it must predict.

Padding: a batch of sequences of different lengths, left- or right-padded, comes
with ``key_padding_mask`` (B, S), True at padding (minigrad's one mask convention).
Padding is hidden from every query as a key, and each real token's position is the
number of real tokens before it in its row,

    positions = cumsum(not padding, along the row) - 1,

so a sequence reads the same whatever padding sits beside it (padded queries give
outputs nobody should read).

Cached decoding: ``cache = model.new_cache()`` (one growing ``KVCache`` per block);
``model(idx, cache=cache)`` appends the keys and values of idx's T tokens, and the
next call passes only the new tokens: each attends to everything cached, so a new
token costs one query row of attention instead of a forward over the whole prefix.
``models/generation.py`` samples with it.

GELU: the tanh form, 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))), which GPT-2's
code uses (and PyTorch's ``nn.GELU(approximate="tanh")``); it is also the cheaper one
here (the exact form's erf, ``minigrad.backend``, takes some array passes more).

Glossary: B batch, T new positions, S all positions attended to (cached + new),
D = d_model, h = n_head, V = vocab_size, N = n_layer.
"""
import math
from dataclasses import dataclass

from minigrad import backend as _backend
from minigrad import nn
from minigrad.nn.multihead_attention import KVCache
from minigrad.tensor import Tensor, as_tensor

__all__ = ["GPTConfig", "GPT", "Block", "MLP"]


@dataclass
class GPTConfig:
    """The shape of a GPT; defaults are nanoGPT's small CPU recipe (character tokens)."""
    vocab_size: int                 # V: number of token ids (the tokenizer's vocabulary)
    block_size: int = 64            # longest context: the rows of the position table W_pe
    n_layer: int = 4                # N: Transformer blocks
    n_head: int = 4                 # h: attention heads; d_model must be a multiple of it
    d_model: int = 128              # D: width of the residual stream (GPT-2's n_embd)
    dropout: float = 0.0            # on the embeddings, attention weights, and both residual branches
    bias: bool = True               # biases in the Linears and LayerNorms (GPT-2 has them)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"GPTConfig: d_model ({self.d_model}) must be divisible by "
                             f"n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")


class MLP(nn.Module):
    """MLP(u) = dropout(W_2 GELU(W_1 u + b_1) + b_2), hidden width 4D (GPT §4.1).

    Shapes: u (B, T, D) -> (B, T, D); c_fc.weight W_1 (4D, D), c_proj.weight W_2 (D, 4D).
    """

    def __init__(self, config):
        super().__init__()
        D = config.d_model
        self.c_fc = nn.Linear(D, 4 * D, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * D, D, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, u):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(u))))         # (B, T, 4D) -> (B, T, D)


class Block(nn.Module):
    """One pre-norm Transformer block:

        x = x + dropout(Attn(LN_1(x)))        Attn: causal multi-head self-attention
        x = x + MLP(LN_2(x))

    ``attn`` is ``nn.MultiheadAttention`` (in_proj_weight (3D, D), in_proj_bias (3D,),
    out_proj (D, D)), so a twin built on ``torch.nn.MultiheadAttention`` has the
    same parameter names.

    Shapes: x (B, T, D) -> (B, T, D); key_padding_mask (B, S), True at padding;
    cache: a growing ``KVCache`` holding the S - T earlier positions, or None (S = T).
    """

    def __init__(self, config):
        super().__init__()
        D = config.d_model
        self.ln_1 = nn.LayerNorm(D, bias=config.bias)
        self.attn = nn.MultiheadAttention(D, config.n_head, dropout=config.dropout,
                                          bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.ln_2 = nn.LayerNorm(D, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, key_padding_mask=None, cache=None):
        h = self.ln_1(x)                                                   # (B, T, D)
        # One tensor as query, key and value: the (3D, D) projection is one matmul.
        # is_causal: query t sees keys s <= t (with a cache, offset by the cached length).
        a, _ = self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False,
                         is_causal=True, cache=cache)                      # (B, T, D)
        x = x + self.dropout(a)
        return x + self.mlp(self.ln_2(x))                                  # (B, T, D)


class GPT(nn.Module):
    """A GPT language model: token ids (B, T) -> next-token logits (B, T, V).

    >>> import minigrad as mg
    >>> from models.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, d_model=16))
    >>> model(mg.Tensor([[1, 2, 3]])).shape              # (B, T, V)
    (1, 3, 50)

    Parameters (nanoGPT's names, except the attention's, which are
    nn.MultiheadAttention's):
        wte.weight          W_te (V, D)   token embedding, also the output layer
        wpe.weight          W_pe (block_size, D)   learned position embedding
        blocks.i.*          ``Block`` i = 0 .. N-1
        ln_f.weight, .bias  (D,)          final LayerNorm
        lm_head.weight      the same Parameter as wte.weight (one matrix, two names in
                            ``state_dict``, as in PyTorch; ``parameters()`` yields it once,
                            and its gradient is the sum of both uses)

    Initialization (GPT-2's, as nanoGPT):
        Linear, embedding and in-projection weights   N(0, 0.02^2)
        attn.out_proj.weight, mlp.c_proj.weight       N(0, (0.02 / sqrt(2N))^2)
        biases 0; LayerNorm gains 1.
    Why: with LayerNorm at every sub-block's input a small fixed scale suffices (GPT
    §4.1: "a simple weight initialization of N(0, 0.02) was sufficient"), and it keeps
    the tied output layer's logits small (std ~0.02 sqrt(D)), so the model starts
    near the uniform prediction, loss ~ log V. The residual stream is a sum,
    x_N = x_0 + sum of 2N branch outputs (attention and MLP of N blocks); independent
    branches add their variances, so the stream's variance would grow with depth as
    2N. Scaling the last projection of each branch by 1/sqrt(2N) keeps the sum's
    variance independent of N at initialization (GPT-2 §2.3: "we scale the weights
    of residual layers at initialization by a factor of 1/sqrt(N) where N is the
    number of residual layers": 2N here).
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        V, D = config.vocab_size, config.d_model
        self.wte = nn.Embedding(V, D)
        self.wpe = nn.Embedding(config.block_size, D)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(D, bias=config.bias)
        self.lm_head = nn.Linear(D, V, bias=False)
        self.lm_head.weight = self.wte.weight                              # tied: one (V, D) matrix
        self.reset_parameters()

    def reset_parameters(self):
        """GPT-2's initialization (see the class docstring)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, param in self.named_parameters():                    # the tied matrix once
            if name.endswith("bias"):
                nn.init.zeros_(param)
            elif param.ndim == 1:                                      # a LayerNorm gain
                nn.init.ones_(param)
            elif name.endswith(("attn.out_proj.weight", "mlp.c_proj.weight")):
                nn.init.normal_(param, std=residual_std)
            else:
                nn.init.normal_(param, std=0.02)

    def new_cache(self):
        """An empty decoding cache: one growing key/value cache per block."""
        return [KVCache(static=False) for _ in self.blocks]

    def forward(self, idx, key_padding_mask=None, cache=None):
        """Logits of the next token at every position.

        Args:
            idx: (B, T) integer token ids (a Tensor or an array of a minigrad backend).
            key_padding_mask: (B, S) boolean, True at padding, over every position the
                T new ones attend to (S = cached + T); None: no padding.
            cache: from ``new_cache()``; None computes without one (training).

        Returns:
            logits (B, T, V).
        """
        idx = as_tensor(idx)
        if key_padding_mask is not None:
            key_padding_mask = as_tensor(key_padding_mask)
        past = self._check(idx, key_padding_mask, cache)
        positions = self._positions(idx, key_padding_mask, past)          # (T,) or (B, T)

        x = self.drop(self.wte(idx) + self.wpe(positions))                 # (B, T, D)
        for i, block in enumerate(self.blocks):
            x = block(x, key_padding_mask, cache[i] if cache is not None else None)
        return self.lm_head(self.ln_f(x))                                  # (B, T, V)

    def _positions(self, idx, key_padding_mask, past):
        """Position of each new token: past + t without padding; with padding, the
        number of real tokens before it in its row (a padded slot gets the position of
        the last real token before it, or 0: nothing reads it)."""
        xp = _backend.backend_of(idx.data).xp
        T = idx.shape[1]
        if key_padding_mask is None:
            return Tensor(xp.arange(past, past + T))                       # (T,)
        real = (~key_padding_mask.data).astype("int64")                   # (B, S)
        count = real.cumsum(axis=1)[:, past:]                              # (B, T) real tokens up to each
        return Tensor(xp.maximum(count - 1, 0))                            # (B, T)

    def _check(self, idx, key_padding_mask, cache):
        """Raise on a wrong input; return the cached length."""
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"GPT: expected a cache of {len(self.blocks)} layers (model.new_cache()), "
                             f"got {len(cache)}")
        past = _cached_length(cache)
        if idx.ndim != 2:
            raise ValueError(f"GPT: expected token ids of shape (B, T), got shape {idx.shape}")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"GPT: expected integer token ids, got dtype {idx.dtype}")
        B, T = idx.shape
        if T == 0:
            raise ValueError("GPT: expected at least one token per row, got T = 0")
        block_size = self.config.block_size
        if past + T > block_size:
            cached = f" ({past} cached + {T} new)" if past else ""
            raise ValueError(f"GPT: a context of {past + T} tokens{cached} exceeds block_size="
                             f"{block_size} (the rows of the position table); keep the last "
                             f"{block_size} tokens (models/generation.py crops so)")
        if key_padding_mask is not None:
            shape, dtype = tuple(key_padding_mask.shape), key_padding_mask.dtype
            if shape != (B, past + T) or dtype.kind != "b":
                raise ValueError(f"GPT: expected a boolean key_padding_mask of shape "
                                 f"({B}, {past + T}) (cached + new positions), got {dtype} {shape}")
        return past


def _cached_length(cache):
    """How many positions a cache holds (0 for None or a new cache)."""
    if cache is None or cache[0].k is None:
        return 0
    return cache[0].k.shape[2]
