"""BERT (Devlin, Chang, Lee & Toutanova, 2018, "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", arXiv:1810.04805): a Transformer encoder
pre-trained to fill in masked tokens and to tell whether two segments follow each other.
Read top to bottom:

    input     [CLS] a_1 ... a_n [SEP] b_1 ... b_m [SEP] [PAD] ...        tokens   (B, T)
              0     0   ...  0   0    1   ...  1   1    0     ...        segments (B, T)

    1. embed          x_t = E_tok[w_t] + E_seg[s_t] + E_pos[t]            (§3, Figure 2)
                      x   = Dropout(LayerNorm(x))
    2. encode         N post-norm encoder layers (Vaswani et al. 2017, with GELU):
                      a = LayerNorm(x + MultiHead(x, x, x))               padding masked as keys
                      x = LayerNorm(a + W_2 GELU(W_1 a + b_1) + b_2)
    3. masked LM      at each chosen position i:
                      z_i      = LayerNorm(GELU(W_t x_i + b_t))
                      logits_i = z_i E_tok^T + b_out                      (B, T, V) or (N, V)
                      (the output matrix IS the token embedding: one (V, D) Parameter)
    4. next sentence  c      = tanh(W_p x_0 + b_p)      the pooled [CLS] vector
                      logits = W_c c + b_c                                 (B, 2)
                      class 0 IsNext (b follows a in the text), 1 NotNext (b is random)
    5. loss           L = mean CE over the chosen positions + mean CE of next sentence
                      (Appendix A.2: "the sum of the mean masked LM likelihood and the
                      mean next sentence prediction likelihood")

BERT-base is N = 12, D = 768, h = 12, F = 3072 (the paper's L, H, A, 4H); the defaults
of ``BERTConfig`` are a CPU-sized model.

Why mask at all (§3.1): a left-to-right language model may only look left, because a
model that sees both sides of a word can trivially "see itself" when predicting it.
Hiding some input tokens and predicting them from everything else (the Cloze task)
lets every layer attend in both directions.

Why 15% (§3.1): the loss is taken only on the chosen positions, so each sequence
teaches ~15% of its tokens (the paper notes MLM converges more slowly than a
left-to-right model, which learns from every token); choosing more leaves less intact
context to predict from and makes the corrupted input less like real text. 15% is the
paper's trade-off between the two (it does not ablate the rate).

Why 80/10/10 (§3.1, Appendix C.2): [MASK] never appears at fine-tuning time, so a model
that only ever saw [MASK] at the positions it must predict would meet a different
input distribution when fine-tuned (the pre-train / fine-tune mismatch). So of the
chosen positions
    80% become [MASK]               the plain Cloze task;
    10% become a random real token  the model cannot trust any input token to be the
                                    true one, so it must keep a contextual
                                    representation of every position, not only of [MASK];
    10% keep their token            biases that representation toward the word actually
                                    observed.
The random tokens are 10% of 15% = 1.5% of all tokens, too few to harm the model's
grasp of the language. Appendix C.2 finds 80/10/10 best of the mixes tried, [MASK]
alone clearly worst for feature-based use.

The masking contract (what ``minigrad.data`` implements and this file relies on):
- positions are chosen among real tokens only: never [PAD], [CLS] or [SEP];
- the random replacement is a real token, never a special id;
- ``mlm_labels`` (B, T) holds the original token at each chosen position and -100
  (the ``ignore_index`` of cross-entropy, PyTorch's and Hugging Face's convention)
  everywhere else, so the MLM loss is taken on the chosen positions only;
- [CLS] is at position 0 of every sequence (the next-sentence head reads it);
- ``nsp_labels`` (B,): 0 when segment B truly follows segment A (50% of pairs),
  1 when it is a random segment (the other 50%).

Deviations from the paper's reference code, said out loud: weights start from
N(0, 0.02^2) untruncated (the TF code truncates at 2 sigma; Hugging Face's port does not);
``nn.TransformerEncoderLayer`` also drops out after the feed-forward GELU (as PyTorch's
layer does; BERT drops out only the sub-layer outputs and the attention weights).

GELU, exact or tanh (``BERTConfig.gelu_approximate``): x Phi(x) with the normal CDF
Phi(x) = (1 + erf(x / sqrt 2)) / 2 is what BERT was released with and what Hugging Face's
BERT computes (the default, "none"); the reference repository later switched to the tanh
approximation (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, GPT's form ("tanh"). The two
GELUs differ by at most 4.8e-4 (near x = -2.7). NumPy has no erf ufunc; ``minigrad.backend``
computes it vectorized, with Cody's rational approximations in float64 and a fitted
formula in float32, both within 4 ulp, so the exact form costs some array passes more
than "tanh", not a Python loop.

Glossary: B batch, T sequence length, D = d_model, h heads, F = d_ff, N layers,
V vocabulary, P = max_positions; N_chosen the number of positions the MLM head runs on.
"""
from collections import namedtuple
from dataclasses import dataclass
from functools import partial

from minigrad import backend as _backend
from minigrad import nn
from minigrad.deferred_checks import check_indices
from minigrad.function import no_grad
from minigrad.nn import functional as F
from minigrad.nn import init
from minigrad.tensor import Tensor, as_tensor

__all__ = ["BERTConfig", "BERT", "BERTEmbeddings", "MaskedLMHead", "NextSentenceHead",
           "bert_loss", "fill_mask", "FilledMasks", "IGNORE_INDEX"]

IGNORE_INDEX = -100   # mlm_labels at positions without a loss (cross-entropy's ignore_index)


@dataclass
class BERTConfig:
    vocab_size: int                 # V: ids in [0, V), the specials [PAD] [CLS] [SEP] [MASK] included
    max_positions: int = 512        # P: rows of the learned position table, the longest T (BERT: 512)
    n_layer: int = 4                # N encoder layers (BERT-base: 12)
    n_head: int = 4                 # h attention heads; d_model must be divisible by it (BERT-base: 12)
    d_model: int = 256              # D, the width of every position's vector (BERT-base: 768)
    d_ff: int = 1024                # F, the feed-forward hidden width (BERT: 4 D)
    dropout: float = 0.1            # embeddings, attention weights, FFN hidden, sub-layer outputs (BERT: 0.1)
    type_vocab_size: int = 2        # segment ids: 0 sentence A, 1 sentence B
    pad_id: int = 0                 # [PAD]: masked as keys when no key_padding_mask is given
    layer_norm_eps: float = 1e-12   # BERT's reference code uses 1e-12 (PyTorch's default is 1e-5)
    gelu_approximate: str = "none"  # GELU's Phi: "none" erf, "tanh" its tanh form (module docstring)

    def __post_init__(self):
        for name in ("vocab_size", "max_positions", "n_layer", "n_head", "d_model", "d_ff",
                     "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"BERTConfig: {name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"BERTConfig: d_model ({self.d_model}) must be divisible by "
                             f"n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BERTConfig: dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"BERTConfig: pad_id must be in [0, vocab_size={self.vocab_size}), "
                             f"got {self.pad_id}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"BERTConfig: gelu_approximate must be 'none' or 'tanh', got "
                             f"{self.gelu_approximate!r}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"BERTConfig: layer_norm_eps must be positive, got {self.layer_norm_eps}")


class BERTEmbeddings(nn.Module):
    """x_t = Dropout(LayerNorm(E_tok[w_t] + E_seg[s_t] + E_pos[t]))  (§3, Figure 2).

    All three tables are learned; the positions are not sinusoidal, so no input may be
    longer than the P rows of E_pos.

    Shapes: tokens, segments (B, T) int64 -> (B, T, D).
    Parameters: token_embeddings (V, D), segment_embeddings (type_vocab_size, D),
    position_embeddings (P, D), norm (D,).
    """

    def __init__(self, config):
        super().__init__()
        D = config.d_model
        self.token_embeddings = nn.Embedding(config.vocab_size, D)
        self.segment_embeddings = nn.Embedding(config.type_vocab_size, D)
        self.position_embeddings = nn.Embedding(config.max_positions, D)
        self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, tokens, segments):
        B, T = tokens.shape
        x = self.token_embeddings(tokens) + self.segment_embeddings(segments)   # (B, T, D)
        x = x + self.position_embeddings.weight[:T]                            # (T, D) broadcast over B
        return self.dropout(self.norm(x))                                      # (B, T, D)


class MaskedLMHead(nn.Module):
    """logits = LayerNorm(GELU(h W_t^T + b_t)) E_tok^T + b_out.

    ``decoder.weight`` is the token embedding E_tok itself (one Parameter, passed in):
    a token's input vector and its output vector are one, and its gradient is the sum
    from both uses. ``decoder.bias`` (V,) is the head's own.

    Shapes: h (..., D) -> logits (..., V).
    Parameters: transform (D, D), norm (D,), decoder.weight (V, D) tied, decoder.bias (V,).
    """

    def __init__(self, d_model, vocab_size, layer_norm_eps, token_embedding_weight,
                 gelu_approximate="none"):
        super().__init__()
        if token_embedding_weight.shape != (vocab_size, d_model):
            raise ValueError(f"MaskedLMHead: expected a token embedding of shape "
                             f"({vocab_size}, {d_model}), got {token_embedding_weight.shape}")
        self.transform = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.decoder = nn.Linear(d_model, vocab_size)
        self.decoder.weight = token_embedding_weight           # tied: one (V, D) Parameter
        self.gelu_approximate = gelu_approximate

    def forward(self, h):
        z = self.norm(F.gelu(self.transform(h), self.gelu_approximate))   # (..., D)
        return self.decoder(z)                                  # (..., V)


class NextSentenceHead(nn.Module):
    """c = tanh(h_0 W_p^T + b_p) (the "pooler": the [CLS] vector); logits = c W_c^T + b_c.

    Class 0 is IsNext, 1 NotNext. The pooled vector c is also what a sentence-level
    fine-tuning task classifies (``pool``).

    Shapes: h (B, T, D) -> logits (B, 2).
    Parameters: pooler (D, D), classifier (2, D).
    """

    def __init__(self, d_model):
        super().__init__()
        self.pooler = nn.Linear(d_model, d_model)
        self.classifier = nn.Linear(d_model, 2)

    def pool(self, h):
        return F.tanh(self.pooler(h[:, 0]))                     # (B, D): position 0 is [CLS]

    def forward(self, h):
        return self.classifier(self.pool(h))                    # (B, 2)


class BERT(nn.Module):
    """The BERT pre-training model: embeddings, N post-norm GELU encoder layers, the
    masked-LM head and the next-sentence head (see the module docstring).

    >>> import minigrad as mg
    >>> from models.bert import BERT, BERTConfig
    >>> model = BERT(BERTConfig(vocab_size=50, max_positions=16, n_layer=1, n_head=2,
    ...                         d_model=16, d_ff=32))
    >>> tokens = mg.Tensor([[4, 7, 8, 5, 9, 5, 0]])      # [CLS] a a [SEP] b [SEP] [PAD]
    >>> segments = mg.Tensor([[0, 0, 0, 0, 1, 1, 0]])
    >>> mlm_logits, nsp_logits = model(tokens, segments)  # padding: tokens == pad_id (0)
    >>> mlm_logits.shape, nsp_logits.shape               # (B, T, V), (B, 2)
    ((1, 7, 50), (1, 2))

    ``model(tokens, segments, key_padding_mask=None, mlm_positions=None)`` returns
    ``(mlm_logits, nsp_logits)``:

        tokens            (B, T) int64, T <= max_positions, [CLS] first
        segments          (B, T) int64 in [0, type_vocab_size); None: all 0 (one segment)
        key_padding_mask  (B, T) bool, True at padding; None: tokens == config.pad_id
        mlm_positions     the positions chosen for prediction (``mlm_labels != -100``),
                          or None for every position: either (B, T) bool, True at each,
                          or (N_chosen,) integers, the flat indices b * T + t of the
                          True entries in increasing order (``np.flatnonzero`` of that
                          mask, computed on the host by the data pipeline). The two mean
                          the same; a boolean mask on a GPU costs a device->host read
                          (how many are True sets the output's size), the integer
                          positions none: pass those in a training step.
        mlm_logits        (B, T, V) without mlm_positions; with it (N_chosen, V), the
                          chosen positions in row-major (b, t) order, the order of
                          ``mlm_labels[mlm_positions]``. The head's (D, V) product grows
                          with the vocabulary, and ~85% of positions have no loss: pass
                          mlm_positions in training.
        nsp_logits        (B, 2)

    ``encode`` gives the encoder's output (B, T, D) alone (for fine-tuning).

    Parameter names: ``embeddings.*``, ``encoder.layers.{i}.*`` (``torch.nn.TransformerEncoder``'s),
    ``mlm_head.*`` (``mlm_head.decoder.weight`` is ``embeddings.token_embeddings.weight``),
    ``nsp_head.*``.

    Initialization (BERT's): every weight matrix and embedding N(0, 0.02^2), every bias
    0, LayerNorm gains 1 and biases 0.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        D = config.d_model
        self.embeddings = BERTEmbeddings(config)
        gelu = partial(F.gelu, approximate=config.gelu_approximate)
        layer = nn.TransformerEncoderLayer(D, config.n_head, config.d_ff, config.dropout,
                                           activation=gelu, layer_norm_eps=config.layer_norm_eps,
                                           batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, config.n_layer)    # post-norm: no final norm
        self.mlm_head = MaskedLMHead(D, config.vocab_size, config.layer_norm_eps,
                                     self.embeddings.token_embeddings.weight, config.gelu_approximate)
        self.nsp_head = NextSentenceHead(D)
        self.reset_parameters()

    def reset_parameters(self):
        """BERT's initialization: N(0, 0.02^2) weights and embeddings, zero biases,
        LayerNorm 1 and 0 (the tied decoder weight is the token embedding: drawn once)."""
        std = 0.02
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                init.normal_(module.weight, std=std)
            elif isinstance(module, nn.Linear):
                if module is not self.mlm_head.decoder:
                    init.normal_(module.weight, std=std)
                init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                init.normal_(module.in_proj_weight, std=std)
                init.zeros_(module.in_proj_bias)
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)

    def forward(self, tokens, segments=None, key_padding_mask=None, mlm_positions=None):
        h = self.encode(tokens, segments, key_padding_mask)                   # (B, T, D)
        nsp_logits = self.nsp_head(h)                                          # (B, 2)
        if mlm_positions is not None:
            h = self._gather(h, mlm_positions)                                 # (N_chosen, D)
        return self.mlm_head(h), nsp_logits                                    # (B, T, V) or (N_chosen, V)

    def encode(self, tokens, segments=None, key_padding_mask=None):
        """The encoder's output h (B, T, D): embeddings, then the N layers, padding masked."""
        tokens = self._ids(tokens, "tokens")
        B, T = tokens.shape
        if T > self.config.max_positions:
            raise ValueError(f"BERT: sequences of length T={T} exceed max_positions="
                             f"{self.config.max_positions} (the rows of the position table)")
        if segments is None:
            segments = Tensor(_backend.backend_of(tokens.data).xp.zeros((B, T), dtype=tokens.dtype))
        segments = self._ids(segments, "segments", like=tokens)
        # checked on the device inside a training step, read later (minigrad/deferred_checks.py)
        check_indices((segments.data < 0) | (segments.data >= self.config.type_vocab_size), ValueError,
                      lambda: f"BERT: segments must be in [0, type_vocab_size={self.config.type_vocab_size}), "
                              f"got values from {int(segments.data.min())} to {int(segments.data.max())}")
        if key_padding_mask is None:
            key_padding_mask = tokens == self.config.pad_id                   # (B, T)
        key_padding_mask = self._mask(key_padding_mask, "key_padding_mask", tokens)
        x = self.embeddings(tokens, segments)                                  # (B, T, D)
        return self.encoder(x, src_key_padding_mask=key_padding_mask)          # (B, T, D)

    def _gather(self, h, mlm_positions):
        """The rows of h (B, T, D) at the chosen positions: (N_chosen, D), in row-major
        (b, t) order. A flat integer index, not the boolean mask itself: its backward
        is one scatter-add on every backend."""
        B, T, D = h.shape
        rows = self._flat_positions(mlm_positions, h)                          # (N_chosen,) in [0, B T)
        return h.reshape(B * T, D)[rows]                                       # (N_chosen, D)

    def _flat_positions(self, mlm_positions, h):
        """mlm_positions as flat indices (N_chosen,) into the B T rows of h."""
        B, T = h.shape[:2]
        positions = as_tensor(mlm_positions, like=h)
        if positions.dtype.kind == "b":
            mask = self._mask(positions, "mlm_positions", h)
            rows, = mask.data.reshape(B * T).nonzero()        # a device->host read: the count of True
            return rows
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            raise ValueError(f"BERT: expected mlm_positions as a boolean array of shape ({B}, {T}) or flat "
                             f"integer positions (N_chosen,), got {positions.dtype} of shape {positions.shape}")
        rows = positions.data
        check_indices((rows < 0) | (rows >= B * T), IndexError,
                      lambda: f"BERT: mlm_positions must be flat positions in [0, B T = {B * T}), got values "
                              f"from {int(rows.min())} to {int(rows.max())}")
        return rows

    @staticmethod
    def _ids(ids, name, like=None):
        ids = as_tensor(ids, like=like)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"BERT: expected {name} as integer ids of shape (B, T), got "
                             f"{ids.dtype} of shape {ids.shape}")
        if like is not None and ids.shape != like.shape:
            raise ValueError(f"BERT: expected {name} of the shape of tokens {like.shape}, "
                             f"got {ids.shape}")
        return ids

    @staticmethod
    def _mask(mask, name, like):
        mask = as_tensor(mask, like=like)
        B, T = like.shape[:2]
        if mask.shape != (B, T) or mask.dtype.kind != "b":
            raise ValueError(f"BERT: expected {name} as a boolean array of shape ({B}, {T}), "
                             f"got {mask.dtype} of shape {mask.shape}")
        return mask


def bert_loss(mlm_logits, mlm_labels, nsp_logits, nsp_labels, mlm_count=None, nsp_count=None):
    """(total, mlm_loss, nsp_loss): total = mlm_loss + nsp_loss (Appendix A.2).

    mlm_loss: the mean cross-entropy over the positions whose label is not -100, from
        mlm_logits (B, T, V) with mlm_labels (B, T), or, when the model ran on
        mlm_positions, mlm_logits (N_chosen, V) with mlm_labels[mlm_positions] (N_chosen,).
        A batch with no chosen position gives NaN (as PyTorch's mean over nothing).
    nsp_loss: the mean cross-entropy of nsp_logits (B, 2) against nsp_labels (B,),
        0 IsNext, 1 NotNext.
    mlm_count, nsp_count: divide each loss's sum by these counts instead of by the
        batch's own (host numbers): a data-parallel rank holds part of a batch, and
        its sums over the whole batch's counts add up, over the ranks, to the whole
        batch's means (``models/objectives/masked_lm.py``).
    """
    mlm_labels = as_tensor(mlm_labels, like=mlm_logits)
    nsp_labels = as_tensor(nsp_labels, like=nsp_logits)
    if mlm_logits.ndim not in (2, 3) or mlm_labels.shape != mlm_logits.shape[:-1]:
        raise ValueError(f"bert_loss: expected mlm_logits (B, T, V) with mlm_labels (B, T), or "
                         f"(N_chosen, V) with mlm_labels[mlm_positions] (N_chosen,); got "
                         f"mlm_logits {mlm_logits.shape} and mlm_labels {mlm_labels.shape}")
    if nsp_logits.ndim != 2 or nsp_logits.shape[1] != 2 or nsp_labels.shape != nsp_logits.shape[:1]:
        raise ValueError(f"bert_loss: expected nsp_logits (B, 2) with nsp_labels (B,); got "
                         f"nsp_logits {nsp_logits.shape} and nsp_labels {nsp_labels.shape}")
    V = mlm_logits.shape[-1]
    mlm_loss = _mean_cross_entropy(mlm_logits.reshape(-1, V), mlm_labels.reshape(-1), mlm_count)  # () over chosen
    nsp_loss = _mean_cross_entropy(nsp_logits, nsp_labels, nsp_count)                            # () over B
    return mlm_loss + nsp_loss, mlm_loss, nsp_loss


def _mean_cross_entropy(logits, labels, count=None):
    """The cross-entropy's mean over the labels that are not IGNORE_INDEX, or, with a
    ``count``, its sum over ``count`` (bert_loss's docstring says why)."""
    if count is None:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum") / count


FilledMasks = namedtuple("FilledMasks", ["positions", "ids", "probs"])
FilledMasks.__doc__ = """What ``fill_mask`` returns, NumPy arrays on the host:
    positions (N, 2) int: (b, t) of each [MASK], in row-major order
    ids       (N, k) int: the k most likely tokens at each, most likely first
    probs     (N, k) float: their probabilities under the model"""


def fill_mask(model, tokens, mask_id, segments=None, key_padding_mask=None, top_k=5):
    """The model's top-k tokens and their probabilities at every [MASK] of ``tokens``.

    Tokenizer-agnostic: ids in, ids out. ``tokens`` is one sentence (T,) or a batch
    (B, T) of ids (a list, or a Tensor on the model's backend), laid out as in training
    ([CLS] first, [SEP] after each segment); ``mask_id`` is the [MASK] id. The model
    runs in evaluation mode (no dropout) without a graph; its mode is restored.
    Returns ``FilledMasks(positions, ids, probs)``.
    """
    like = next(model.parameters())
    tokens = as_tensor(tokens, like=like)
    if tokens.ndim == 1:
        tokens = tokens.reshape(1, -1)                                          # (1, T)
        segments = as_tensor(segments, like=like).reshape(1, -1) if segments is not None else None
        key_padding_mask = (as_tensor(key_padding_mask, like=like).reshape(1, -1)
                            if key_padding_mask is not None else None)
    masked = tokens == mask_id                                                  # (B, T)
    if not bool(masked.data.any()):
        raise ValueError(f"fill_mask: no [MASK] (id {mask_id}) in tokens")
    if not 1 <= top_k <= model.config.vocab_size:
        raise ValueError(f"fill_mask: top_k must be in [1, {model.config.vocab_size}], got {top_k}")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits, _ = model(tokens, segments, key_padding_mask, mlm_positions=masked)   # (N, V)
            probs = F.softmax(logits, axis=-1).data                                       # (N, V)
    finally:
        model.train(was_training)
    xp = _backend.backend_of(probs).xp
    ids = xp.argsort(-probs, axis=-1)[:, :top_k]                 # (N, k)
    positions = xp.stack(masked.data.nonzero(), axis=1)                          # (N, 2)
    return FilledMasks(_backend.to_numpy(positions), _backend.to_numpy(ids),
                       _backend.to_numpy(xp.take_along_axis(probs, ids, axis=-1)))
