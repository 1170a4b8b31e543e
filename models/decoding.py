"""Decoding: greedy search and beam search, batched, for any model with the
interface of ``models/interface.py`` (encode, start, step, select).

Both stop a hypothesis at its end-of-sequence token and the whole batch when every
hypothesis has stopped or ``max_len`` tokens were made. Each step checks "all
stopped?" on the host: one small synchronization per generated token.

Beam search (Sutskever et al., 2014; with the length penalty of Wu et al., 2016,
"Google's Neural Machine Translation System", arXiv:1609.08144, §7):

    keep the K best prefixes by log P(y_1..t | x); at each step extend each by every
    token, keep the K best of the K * V candidates; a finished hypothesis is carried
    along unchanged (its only extension is a no-op of log-probability 0).
    At the end choose, per source, the hypothesis with the best
        log P(Y | x) / lp(Y),     lp(Y) = ((5 + |Y|) / 6)^alpha
    alpha = 0 ranks by log-probability alone; alpha > 0 favours longer outputs, which
    raw log-probability (a sum of negative terms) would otherwise penalize.
"""
from dataclasses import dataclass

from minigrad import backend as _backend
from minigrad.function import no_grad
from minigrad.ops import log_softmax
from minigrad.tensor import Tensor

__all__ = ["Hypotheses", "greedy_decode", "beam_search", "length_penalty"]


@dataclass
class Hypotheses:
    """Decoded outputs, one per source sentence (host-side lists).

    tokens:    token ids, without the end-of-sequence token
    scores:    log P(tokens + eos | source) under the model (without eos if it never came)
    attention: per source, a list (one per output step) of attention weights from the
               model (NumPy), or None when the model gives none or for beam search
    """
    tokens: list
    scores: list
    attention: list = None


def length_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al., 2016, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def greedy_decode(model, src, src_lengths, bos_id, eos_id, max_len=50, keep_attention=False):
    """The most probable token at each step, fed back as the next input."""
    with no_grad():
        xp = _backend.backend_of(src.data).xp
        B = src.shape[0]
        encoded = model.encode(src, src_lengths)
        state = model.start(encoded)
        tokens = Tensor(xp.full((B,), bos_id, dtype="int64"))                  # (B,)
        finished = xp.zeros((B,), dtype=bool)                                  # (B,)
        scores = xp.zeros((B,), dtype="float64")                               # (B,)
        steps, attention = [], []
        for _ in range(max_len):
            logits, state, attn = model.step(encoded, state, tokens)           # (B, V)
            logp = log_softmax(logits, axis=-1).data                           # (B, V)
            best = logp.argmax(axis=-1)                                        # (B,)
            gained = xp.take_along_axis(logp, best[:, None], axis=-1)[:, 0]    # (B,)
            scores += xp.where(finished, 0.0, gained.astype("float64"))
            best = xp.where(finished, eos_id, best)
            steps.append(best)
            if keep_attention and attn is not None:
                attention.append(_host_attention(attn))
            finished = finished | (best == eos_id)
            if bool(finished.all()):
                break
            tokens = Tensor(best)
        out = _backend.to_numpy(xp.stack(steps, axis=1))                       # (B, L)
        result = Hypotheses([_until_eos(row, eos_id) for row in out],
                            [float(s) for s in _backend.to_numpy(scores)])
        if keep_attention and attention:
            result.attention = [[_row(step, b) for step in attention[:len(result.tokens[b]) + 1]]
                                for b in range(B)]
        return result


def beam_search(model, src, src_lengths, bos_id, eos_id, beam_size=4, max_len=50, alpha=0.0):
    """The ``beam_size`` best prefixes kept at each step; per source, the best finished
    hypothesis under log P / lp(alpha). Beam size 1 is greedy search."""
    with no_grad():
        xp = _backend.backend_of(src.data).xp
        B, K = src.shape[0], beam_size
        encoded = model.encode(src, src_lengths)
        rows = xp.repeat(xp.arange(B), K)                                      # (B*K,) source of each beam
        encoded, _ = model.select(encoded, None, Tensor(rows))
        state = model.start(encoded)
        tokens = Tensor(xp.full((B * K,), bos_id, dtype="int64"))              # (B*K,)
        # Only the first beam is live at the start, so the K beams do not all
        # begin as copies of one prefix.
        scores = xp.full((B, K), float("-inf"), dtype="float64")               # (B, K)
        scores[:, 0] = 0.0
        finished = xp.zeros((B, K), dtype=bool)                                # (B, K)
        lengths = xp.zeros((B, K), dtype="int64")                              # (B, K)
        history = xp.zeros((B, K, 0), dtype="int64")                           # (B, K, t)
        for _ in range(max_len):
            logits, state, _ = model.step(encoded, state, tokens)             # (B*K, V)
            logp = log_softmax(logits, axis=-1).data.astype("float64")         # (B*K, V)
            V = logp.shape[-1]
            logp = logp.reshape(B, K, V)                                       # (B, K, V)
            # A finished hypothesis has one extension, eos again, at no cost.
            logp = xp.where(finished[:, :, None], float("-inf"), logp)
            logp[..., eos_id] = xp.where(finished, 0.0, logp[..., eos_id])
            candidates = (scores[:, :, None] + logp).reshape(B, K * V)         # (B, K*V)
            # The K best candidates, best first (a stable sort: ties keep the lower index).
            best = xp.argsort(-candidates, axis=-1, kind="stable")[:, :K]      # (B, K)
            parent, token = best // V, best % V                                # (B, K) each
            scores = xp.take_along_axis(candidates, best, axis=-1)             # (B, K)
            was_finished = xp.take_along_axis(finished, parent, axis=-1)       # (B, K)
            lengths = xp.take_along_axis(lengths, parent, axis=-1) + (~was_finished)
            finished = was_finished | (token == eos_id)
            history = xp.concatenate(
                [xp.take_along_axis(history, parent[:, :, None], axis=1), token[:, :, None]], axis=-1)
            flat_parent = (xp.arange(B)[:, None] * K + parent).reshape(-1)     # (B*K,)
            encoded, state = model.select(encoded, state, Tensor(flat_parent))
            tokens = Tensor(token.reshape(-1))
            if bool(finished.all()):
                break
        # Length without eos for the penalty: |Y| counts the tokens the user gets.
        out_len = lengths - finished.astype("int64")                           # (B, K)
        normalized = scores / length_penalty(out_len.astype("float64"), alpha)
        normalized = xp.where(xp.isnan(normalized), float("-inf"), normalized)
        choice = normalized.argmax(axis=-1)                                    # (B,)
        history, scores = _backend.to_numpy(history), _backend.to_numpy(scores)
        choice = _backend.to_numpy(choice)
        return Hypotheses([_until_eos(history[b, choice[b]], eos_id) for b in range(B)],
                          [float(scores[b, choice[b]]) for b in range(B)])


def _until_eos(row, eos_id):
    out = []
    for token in row.tolist():
        if token == eos_id:
            break
        out.append(int(token))
    return out


def _host_attention(attn):
    """A step's attention weights to NumPy: (B, S) for RNNs, or per layer (B, h, S)."""
    if isinstance(attn, (list, tuple)):
        return [_host_attention_one(a) for a in attn]
    return _host_attention_one(attn)


def _host_attention_one(a):
    return a.numpy() if isinstance(a, Tensor) else _backend.to_numpy(a)


def _row(step, b):
    """Source b's weights in one step: (S,) for RNNs, per layer (h, S) for the Transformer."""
    return [a[b] for a in step] if isinstance(step, list) else step[b]
