"""Decoding: greedy search and beam search, batched, for any model with the
interface of ``models/interface.py`` (encode, start, step, select).

Both stop a hypothesis at its end-of-sequence token and the whole batch when every
hypothesis has stopped or ``max_len`` tokens were made. Each step checks "all
stopped?" on the host: one small synchronization per generated token.

Beam search (Sutskever et al., 2014; with the length penalty of Wu et al., 2016,
"Google's Neural Machine Translation System", arXiv:1609.08144, §7):

    keep the K best unfinished prefixes by log P(y_1..t | x); a hypothesis that ends
    in <eos> leaves the beam and competes, per source, by
        log P(Y | x) / lp(Y),     lp(Y) = ((5 + |Y|) / 6)^alpha
    alpha = 0 ranks by log-probability alone; alpha > 0 favours longer outputs, which
    raw log-probability (a sum of negative terms) would otherwise penalize.
"""
from contextlib import contextmanager
from dataclasses import dataclass

from minigrad import backend as _backend
from minigrad.function import no_grad
from minigrad.ops import log_softmax
from minigrad.tensor import Tensor

__all__ = ["Hypotheses", "greedy_decode", "beam_search", "length_penalty"]


@dataclass
class Hypotheses:
    """Decoded outputs, one per source sentence (host-side lists).

    tokens:            token ids, without the end-of-sequence token
    scores:            log P(tokens + eos | source) under the model (without eos if it
                       never came)
    attention_weights: per source, a list (one per output step) of attention weights
                       from the model (NumPy), or None when the model gives none or for
                       beam search
    """
    tokens: list
    scores: list
    attention_weights: list = None


def length_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al., 2016, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def greedy_decode(model, src, src_lengths, bos_id, eos_id, max_len=50, keep_attention=False):
    """The most probable token at each step, fed back as the next input.

    ``keep_attention``: also return each step's attention weights (a model that keeps
    them only on request, the Transformer, is asked to for this call)."""
    with no_grad(), _keeping_attention(model, keep_attention):
        xp = _backend.backend_of(src.data).xp
        B = src.shape[0]
        encoded = model.encode(src, src_lengths)
        state = model.start(encoded)
        tokens = Tensor(xp.full((B,), bos_id, dtype="int64"))                  # (B,)
        finished = xp.zeros((B,), dtype=bool)                                  # (B,)
        scores = xp.zeros((B,), dtype="float64")                               # (B,)
        steps, weights_per_step = [], []
        for _ in range(max_len):
            logits, state, weights = model.step(encoded, state, tokens)        # (B, V)
            logp = log_softmax(logits, axis=-1).data                           # (B, V)
            best = logp.argmax(axis=-1)                                        # (B,)
            gained = xp.take_along_axis(logp, best[:, None], axis=-1)[:, 0]    # (B,)
            scores += xp.where(finished, 0.0, gained.astype("float64"))
            best = xp.where(finished, eos_id, best)
            steps.append(best)
            if keep_attention and weights is not None:
                weights_per_step.append(_host_weights(weights))
            finished = finished | (best == eos_id)
            if bool(finished.all()):
                break
            tokens = Tensor(best)
        out = _backend.to_numpy(xp.stack(steps, axis=1))                       # (B, L)
        result = Hypotheses([_until_eos(row, eos_id) for row in out],
                            [float(s) for s in _backend.to_numpy(scores)])
        if keep_attention and weights_per_step:
            result.attention_weights = [[_row(step, b) for step in weights_per_step[:len(result.tokens[b]) + 1]]
                                        for b in range(B)]
        return result


def beam_search(model, src, src_lengths, bos_id, eos_id, beam_size=4, max_len=50, alpha=0.0):
    """The ``beam_size`` best live prefixes kept at each step; per source, the best
    finished hypothesis under log P / lp(alpha). Beam size 1 with alpha 0 is greedy search.

    Each step (as fairseq and GNMT do):
      1. extend each live prefix by every token: K * V candidates, scored log P;
      2. take the 2K best; those that end in <eos> among the first K are finished:
         their normalized score log P / lp(|Y|) competes for the source's best;
      3. the K best that do not end in <eos> are the next live prefixes;
      4. stop when no live prefix can still beat the best finished hypothesis: log P
         only falls as a prefix grows, and lp(|Y|) grows at most to lp(max_len).
    A prefix still live after ``max_len`` steps competes as it is.
    Returns the chosen hypotheses and their log P (not normalized).
    """
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
        scores = xp.full((B, K), float("-inf"), dtype="float64")               # (B, K) live log P
        scores[:, 0] = 0.0
        history = xp.zeros((B, K, 0), dtype="int64")                           # (B, K, t)
        best = xp.full((B,), float("-inf"), dtype="float64")                   # (B,) normalized
        best_raw = xp.full((B,), float("-inf"), dtype="float64")               # (B,) its log P
        best_tokens = xp.zeros((B, max_len), dtype="int64")                    # (B, max_len)
        best_length = xp.zeros((B,), dtype="int64")                            # (B,)
        first_k = xp.arange(2 * K)[None, :] < K                                # (1, 2K)
        for t in range(max_len):
            logits, state, _ = model.step(encoded, state, tokens)             # (B*K, V)
            logp = log_softmax(logits, axis=-1).data.astype("float64")         # (B*K, V)
            V = logp.shape[-1]
            candidates = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
            # 1-2. The 2K best candidates, best first.
            top = _best_first(xp, candidates, 2 * K)                           # (B, 2K)
            top_scores = xp.take_along_axis(candidates, top, axis=-1)          # (B, 2K)
            parent, token = top // V, top % V                                  # (B, 2K) each
            is_eos = token == eos_id
            # |Y| = t tokens before this <eos>.
            finished = xp.where(is_eos & first_k, top_scores / length_penalty(t, alpha), float("-inf"))
            pick = finished.argmax(axis=-1)                                    # (B,)
            candidate_best = xp.take_along_axis(finished, pick[:, None], axis=-1)[:, 0]
            better = candidate_best > best                                     # (B,)
            source = xp.take_along_axis(parent, pick[:, None], axis=-1)[:, 0]  # (B,) its beam
            prefix = xp.take_along_axis(history, source[:, None, None], axis=1)[:, 0]   # (B, t)
            best_tokens[:, :t] = xp.where(better[:, None], prefix, best_tokens[:, :t])
            best_length = xp.where(better, t, best_length)
            best_raw = xp.where(better, xp.take_along_axis(top_scores, pick[:, None], axis=-1)[:, 0], best_raw)
            best = xp.where(better, candidate_best, best)
            # 3. The K best candidates that go on (never <eos>: at most K of 2K end in it).
            order = xp.argsort(is_eos.astype("int64"), axis=-1, kind="stable")[:, :K]    # (B, K)
            parent = xp.take_along_axis(parent, order, axis=-1)                # (B, K)
            token = xp.take_along_axis(token, order, axis=-1)
            scores = xp.take_along_axis(top_scores, order, axis=-1)
            history = xp.concatenate(
                [xp.take_along_axis(history, parent[:, :, None], axis=1), token[:, :, None]], axis=-1)
            flat_parent = (xp.arange(B)[:, None] * K + parent).reshape(-1)     # (B*K,)
            encoded, state = model.select(encoded, state, Tensor(flat_parent))
            tokens = Tensor(token.reshape(-1))
            # 4. The best a live prefix can still reach (its log P is <= 0 and only falls).
            reachable = scores[:, 0] / length_penalty(max_len, alpha)          # (B,)
            if bool((best >= reachable).all()):
                break
        else:
            # Prefixes still live after max_len steps compete as they are.
            live = scores[:, 0] / length_penalty(max_len, alpha)
            better = live > best
            best_tokens = xp.where(better[:, None], history[:, 0], best_tokens)
            best_length = xp.where(better, max_len, best_length)
            best_raw = xp.where(better, scores[:, 0], best_raw)
        best_tokens, best_length = _backend.to_numpy(best_tokens), _backend.to_numpy(best_length)
        best_raw = _backend.to_numpy(best_raw)
        return Hypotheses([best_tokens[b, :best_length[b]].tolist() for b in range(B)],
                          [float(best_raw[b]) for b in range(B)])


def _best_first(xp, scores, n):
    """Indices of the n largest scores of each row, largest first: a partition (linear)
    finds them, and only those n are sorted, not all K * V."""
    if n >= scores.shape[-1]:
        return xp.argsort(-scores, axis=-1, kind="stable")[:, :n]
    best = xp.argpartition(-scores, n - 1, axis=-1)[:, :n]                     # (B, n), any order
    order = xp.argsort(-xp.take_along_axis(scores, best, axis=-1), axis=-1, kind="stable")
    return xp.take_along_axis(best, order, axis=-1)                            # (B, n), best first


@contextmanager
def _keeping_attention(model, keep):
    """Set ``model.keep_attention`` for one decoding call, and put it back after."""
    if not keep or not hasattr(model, "keep_attention"):
        yield
        return
    before = model.keep_attention
    model.keep_attention = True
    try:
        yield
    finally:
        model.keep_attention = before


def _until_eos(row, eos_id):
    out = []
    for token in row.tolist():
        if token == eos_id:
            break
        out.append(int(token))
    return out


def _host_weights(weights):
    """A step's attention weights to NumPy: (B, S) for RNNs, or per layer (B, h, S)."""
    if isinstance(weights, (list, tuple)):
        return [a.numpy() for a in weights]
    return weights.numpy()


def _row(step, b):
    """Source b's weights in one step: (S,) for RNNs, per layer (h, S) for the Transformer."""
    return [a[b] for a in step] if isinstance(step, list) else step[b]
