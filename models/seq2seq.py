"""RNN encoder-decoders, with and without attention, read top to bottom.

    encoder:   h_1..h_S = RNN(E_src[x_1..x_S])            GRU or LSTM, L layers,
                                                          optionally bidirectional
    bridge:    s_0 = the decoder's initial state, from the encoder's final state
    decoder, one step t (y_0 = <bos>):

    attention="none"      (Sutskever et al., 2014, arXiv:1409.3215; Cho et al., 2014,
                          arXiv:1406.1078): the context c = s_0's top layer, fixed, is
                          fed at every step:
                              s_t = RNN([E_tgt y_{t-1}; c], s_{t-1})
                              logits_t = W_out [s_t; c]
    attention="bahdanau"  (Bahdanau, Cho & Bengio, 2014, arXiv:1409.0473): the score
                          uses the PREVIOUS decoder state, and the context joins the input:
                              a_t = softmax_s(v_a^T tanh(W_q s_{t-1} + W_k h_s))
                              c_t = sum_s a_t,s h_s
                              s_t = RNN([E_tgt y_{t-1}; c_t], s_{t-1})
                              logits_t = W_out [s_t; c_t]
    attention="luong-*"   (Luong, Pham & Manning, 2015, arXiv:1508.04025): the score uses
                          the CURRENT decoder state, and the attentional state feeds the
                          output layer:
                              s_t = RNN([E_tgt y_{t-1}; h~_{t-1}], s_{t-1})   (input feeding)
                              a_t = softmax_s(score(s_t, h_s)),  score = dot | general | concat
                              c_t = sum_s a_t,s h_s
                              h~_t = tanh(W_c [c_t; s_t])
                              logits_t = W_out h~_t
                          Without input feeding, s_t = RNN(E_tgt y_{t-1}, s_{t-1}).

A bidirectional encoder reads the source both ways; its annotations h_s = [h_fwd_s;
h_bwd_s] are 2H wide, and its final states are combined into the decoder's initial
state, layer by layer:

    s_0 = tanh(W_bridge [h_fwd_final; h_bwd_final])      (c_0 = W_bridge_c [...] for LSTMs)

The forward direction's final state has read the whole sentence ending at its last
token, the backward one ending at its first; concatenating them keeps both, and the
learned W_bridge maps the 2H to the decoder's H (Bahdanau et al. initialize from the
backward state alone: s_0 = tanh(W_s h_bwd_1)). A unidirectional encoder's final
state is the decoder's initial state as it is.

Teacher forcing (Williams & Zipser, 1989): in training the decoder reads the true
previous token y_{t-1}; with ``teacher_forcing < 1`` each example reads, with
probability 1 - teacher_forcing, the model's own previous prediction instead
(scheduled sampling, Bengio et al., 2015).

Shapes: src (B, S), tgt_in (B, T) ids -> logits (B, T, V), attention weights a (B, T, S).

Names: ``attention`` (the constructor's argument, train.py's ``--attention``) is the
kind, a string, kept in ``attention_kind``; ``attention_layer`` is the module that
scores and averages (``nn.AdditiveAttention`` or ``nn.LuongAttention``); ``weights``
are the a_t it returns.
"""
from minigrad import backend as _backend
from minigrad import nn
from minigrad.ops import concatenate, stack, tanh, where
from minigrad.tensor import Tensor
from models.interface import as_lengths, padding_mask

__all__ = ["RNNSeq2Seq", "ATTENTIONS", "CELLS"]

ATTENTIONS = ("none", "bahdanau", "luong-dot", "luong-general", "luong-concat")
CELLS = {"gru": (nn.GRU, nn.GRUCell), "lstm": (nn.LSTM, nn.LSTMCell)}


class RNNSeq2Seq(nn.Module):
    """An RNN encoder-decoder; see the module docstring for the equations.

    >>> import minigrad as mg
    >>> from models.seq2seq import RNNSeq2Seq
    >>> model = RNNSeq2Seq(src_vocab=20, tgt_vocab=30, embed_dim=8, hidden_size=16,
    ...                    attention="bahdanau")
    >>> src = mg.Tensor([[5, 6, 7, 0]])                 # one sentence of 3 tokens, padded with 0
    >>> tgt_in = mg.Tensor([[1, 9, 10]])                # <bos> and the target so far
    >>> logits, weights = model(src, [3], tgt_in)
    >>> logits.shape, weights.shape                     # weights: a_t over the source
    ((1, 3, 30), (1, 3, 4))
    >>> weights.numpy()[0, :, 3].tolist()               # the padding gets none
    [0.0, 0.0, 0.0]

    Args:
        src_vocab, tgt_vocab: V_src, V_tgt.  embed_dim: E.  hidden_size: H (per direction).
        num_layers: L (encoder and decoder).  cell: "gru" or "lstm".
        attention: one of ATTENTIONS.  bidirectional: the encoder's.
        dropout: on embeddings, between layers and before the output layer.
        input_feeding: Luong's h~_{t-1} joins the next input (Luong models only).
        teacher_forcing: the probability of reading the true previous token in training.
    """

    def __init__(self, src_vocab, tgt_vocab, embed_dim=64, hidden_size=128, num_layers=1,
                 cell="gru", attention="bahdanau", bidirectional=False, dropout=0.0,
                 input_feeding=True, teacher_forcing=1.0, pad_id=0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"RNNSeq2Seq: cell must be one of {sorted(CELLS)}, got {cell!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"RNNSeq2Seq: attention must be one of {ATTENTIONS}, got {attention!r}")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"RNNSeq2Seq: teacher_forcing must be in [0, 1], got {teacher_forcing}")
        RNN, Cell = CELLS[cell]
        H, E, L = hidden_size, embed_dim, num_layers
        self.cell, self.attention_kind, self.pad_id = cell, attention, pad_id
        self.hidden_size, self.num_layers, self.bidirectional = H, L, bidirectional
        self.input_feeding = input_feeding and attention.startswith("luong")
        self.teacher_forcing = teacher_forcing
        memory_size = 2 * H if bidirectional else H                      # width of h_s

        # Encoder.
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=pad_id)
        self.encoder = RNN(E, H, num_layers=L, dropout=dropout, bidirectional=bidirectional)
        if bidirectional:
            self.bridge = nn.Linear(2 * H, H)                           # W_bridge
            if cell == "lstm":
                self.bridge_c = nn.Linear(2 * H, H)

        # Decoder: one cell per layer, stepped by hand.
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=pad_id)
        extra = {"none": H, "bahdanau": memory_size}.get(attention, H if self.input_feeding else 0)
        self.decoder_cells = nn.ModuleList(
            Cell(E + extra if layer == 0 else H, H) for layer in range(L))
        if attention == "bahdanau":
            self.attention_layer = nn.AdditiveAttention(H, memory_size, H)
        elif attention.startswith("luong"):
            self.attention_layer = nn.LuongAttention(H, memory_size, score=attention[len("luong-"):])
            self.combine = nn.Linear(memory_size + H, H, bias=False)    # W_c
        self.dropout = nn.Dropout(dropout)
        out_size = {"none": 2 * H, "bahdanau": H + memory_size}.get(attention, H)
        self.generator = nn.Linear(out_size, tgt_vocab)                  # W_out

    # -- encoder ----------------------------------------------------------------
    def encode(self, src, src_lengths):
        """Read the source once: annotations, their padding mask, the decoder's s_0."""
        lengths = as_lengths(src_lengths)
        B, S = src.shape
        x = self.dropout(self.src_embed(src))                               # (B, S, E)
        memory, final = self.encoder(x, lengths=lengths)                    # (B, S, H or 2H)
        h_n, c_n = final if self.cell == "lstm" else (final, None)          # (L * dirs, B, H)
        encoded = {"memory": memory, "src_padding": padding_mask(lengths, S, src),
                   "h0": self._bridge(h_n, "bridge", tanh),
                   "c0": self._bridge(c_n, "bridge_c", None) if c_n is not None else None}
        if self.attention_kind == "none":
            encoded["context"] = encoded["h0"][-1]                          # (B, H) c = s_0 top layer
        else:
            # The key projection depends on the source only: once, not at every step.
            encoded["keys"] = self.attention_layer.project_keys(memory)     # (B, S, *)
        return encoded

    def _bridge(self, final, name, activation):
        """(L * dirs, B, H) final states -> a list of L initial decoder states (B, H)."""
        L, H = self.num_layers, self.hidden_size
        if not self.bidirectional:
            return [final[layer] for layer in range(L)]
        B = final.shape[1]
        both = final.reshape(L, 2, B, H)                                    # (L, dirs, B, H)
        states = []
        for layer in range(L):
            joined = concatenate([both[layer, 0], both[layer, 1]], axis=-1)  # (B, 2H)
            s = getattr(self, name)(joined)                                 # (B, H)
            states.append(activation(s) if activation is not None else s)
        return states

    # -- decoder ----------------------------------------------------------------
    def start(self, encoded):
        """s_0 per layer (and c_0), and h~_0 = 0 for input feeding."""
        state = {"h": list(encoded["h0"]), "c": list(encoded["c0"]) if encoded["c0"] is not None else None}
        if self.input_feeding:
            h = encoded["h0"][0]
            state["feed"] = Tensor(_backend.backend_of(h.data).xp.zeros(h.shape, dtype=h.dtype))
        return state

    def step(self, encoded, state, tokens):
        """One decoder step from ``state`` reading ``tokens`` (B,): logits (B, V), the new
        state, and the attention weights (B, S) (None without attention)."""
        y = self.dropout(self.tgt_embed(tokens))                            # (B, E)
        kind, weights = self.attention_kind, None
        if kind == "none":
            context = encoded["context"]                                    # (B, H)
            y = concatenate([y, context], axis=-1)                          # (B, E + H)
        elif kind == "bahdanau":
            # The score uses the previous top-layer state s_{t-1}.
            context, weights = self._attend(encoded, state["h"][-1])        # (B, 2H|H), (B, S)
            y = concatenate([y, context], axis=-1)                          # (B, E + 2H|H)
        elif self.input_feeding:
            y = concatenate([y, state["feed"]], axis=-1)                    # (B, E + H)

        new_h, new_c = self._run_cells(y, state)                            # L x (B, H)
        s = new_h[-1]                                                       # (B, H) top layer
        new_state = {"h": new_h, "c": new_c}
        if kind in ("none", "bahdanau"):
            out = concatenate([s, context], axis=-1)                        # (B, H + ...)
        else:
            # The score uses the current state s_t; h~_t = tanh(W_c [c_t; s_t]).
            context, weights = self._attend(encoded, s)                     # (B, 2H|H), (B, S)
            out = tanh(self.combine(concatenate([context, s], axis=-1)))    # (B, H)
            if self.input_feeding:
                new_state["feed"] = out
        logits = self.generator(self.dropout(out))                          # (B, V)
        return logits, new_state, weights

    def _attend(self, encoded, query):
        return self.attention_layer(query, encoded["memory"], key_padding_mask=encoded["src_padding"],
                                    projected_keys=encoded["keys"])

    def _run_cells(self, x, state):
        """The L stacked cells for one step; dropout between layers."""
        new_h, new_c = [], [] if self.cell == "lstm" else None
        for layer, cell in enumerate(self.decoder_cells):
            if layer > 0:
                x = self.dropout(x)
            if self.cell == "lstm":
                h, c = cell(x, (state["h"][layer], state["c"][layer]))      # (B, H) each
                new_c.append(c)
            else:
                h = cell(x, state["h"][layer])                              # (B, H)
            new_h.append(h)
            x = h
        return new_h, new_c

    # -- teacher forcing ----------------------------------------------------------
    def forward(self, src, src_lengths, tgt_in, tgt_lengths=None):
        """Logits (B, T, V) for every target position, and the attention weights (B, T, S)
        or None.

        Each step reads tgt_in[:, t] (the true previous token), or, for a share
        1 - teacher_forcing of the examples in training, the model's own prediction.
        """
        encoded = self.encode(src, src_lengths)
        state = self.start(encoded)
        B, T = tgt_in.shape
        backend = _backend.backend_of(tgt_in.data)
        all_logits, all_weights = [], []
        tokens = tgt_in[:, 0]                                               # (B,)
        for t in range(T):
            logits, state, weights = self.step(encoded, state, tokens)      # (B, V)
            all_logits.append(logits)
            all_weights.append(weights)
            if t + 1 == T:
                break
            tokens = tgt_in[:, t + 1]                                       # (B,)
            if self.training and self.teacher_forcing < 1.0:
                own = Tensor(logits.data.argmax(axis=-1))                   # (B,)
                gold = backend.rng.random((B,)) < self.teacher_forcing      # (B,) on the device
                tokens = Tensor(backend.xp.where(gold, tokens.data, own.data))
        weights = stack(all_weights, axis=1) if all_weights[0] is not None else None   # (B, T, S)
        return stack(all_logits, axis=1), weights                           # (B, T, V)

    def select(self, encoded, state, index):
        """Keep batch rows ``index`` of the encoding and the state (beam search)."""
        encoded = {k: _select(v, index) for k, v in encoded.items()}
        if state is not None:
            state = {k: _select(v, index) for k, v in state.items()}
        return encoded, state


def _select(value, index):
    if value is None:
        return None
    if isinstance(value, list):
        return [v[index] for v in value]
    return value[index]
