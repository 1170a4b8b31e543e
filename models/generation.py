"""Generation from a decoder-only language model (``models/gpt.py``): greedy search,
temperature, top-k and top-p (nucleus) sampling, a stop token, a key/value cache, and
a batch of prompts of different lengths.

One step, for the logits z (B, V) of the next token (the filters in this order, as
Hugging Face's ``generate``):

    temperature 0:   next = argmax_v z_v                                  (greedy)
    otherwise:       z = z / temperature        below 1 sharpens the distribution, above 1 flattens it
                     z = top_k_filter(z, k)     only the k most probable tokens stay
                     z = top_p_filter(z, p)     only the smallest set of most probable
                                                tokens whose probability reaches p stays
                                                (Holtzman et al., 2019, "The Curious Case
                                                of Neural Text Degeneration")
                     next ~ softmax(z)          drawn by the Gumbel-max trick (``sample``)

A filtered-out token's logit becomes -inf: probability exactly 0.

Prompts of different lengths, one batch: left padding. Each row's last real token
sits in the last column, so every step appends one column of new tokens for all rows:

    prompts [a b c], [d e]   ->   ids [a b c]   padding [F F F]
                                      [0 d e]           [T F F]

The model hides padding from every query and numbers each row's positions by its
real tokens (``models/gpt.py``), so each row computes what it would alone.

With the cache (``use_cache=True``), the prompts are read once, then each step feeds
only the new column: a new token costs one query row of attention over the cached
keys and values. A context holds at most ``block_size`` positions (the rows of the
position table). Past that, generation goes on with a sliding window, as nanoGPT's
``sample`` does: each step recomputes the last ``block_size`` tokens without a
cache, numbered again from position 0. (A cache cannot slide: every cached key was
computed at its old position and from tokens that have left the window.)
``use_cache=False`` recomputes the window at every step from the start: the
reference that the cached steps must equal.

Host and device: the prompts go to the device once; the tokens are drawn there from
the backend's random generator (``minigrad.manual_seed`` makes a run reproducible)
and stay there; the ids (and logits, if kept) come back once at the end. Per step,
the one transfer left is the boolean "has every row stopped?" when ``stop_id`` is
given. (The embeddings' index range checks are recorded on the device and read once,
after the last step: ``minigrad.deferred_checks``.)
"""
from dataclasses import dataclass

import numpy as np

from minigrad import backend as _backend
from minigrad.deferred_checks import DeferredChecks
from minigrad.function import no_grad
from minigrad.tensor import Tensor

__all__ = ["Generation", "generate", "next_token", "apply_temperature", "top_k_filter",
           "top_p_filter", "sample"]


@dataclass
class Generation:
    """What ``generate`` returns (host-side lists, one entry per prompt).

    tokens: the generated ids, without the prompt and without the stop token.
    logits: with ``keep_logits``: a NumPy array (n, V) per prompt, the model's logits
            (before temperature and filters) at each of the row's n steps, the step
            that drew the stop token included; otherwise None.
    """
    tokens: list
    logits: list = None


# -- one step: the filters and the draw ------------------------------------------

def apply_temperature(logits, temperature):
    """z / temperature: softmax(z / tau) is sharper for tau < 1, flatter for tau > 1.

    logits (B, V) -> (B, V); temperature > 0 (0 is greedy search: see ``next_token``).
    """
    if not temperature > 0:
        raise ValueError(f"apply_temperature: expected a temperature > 0, got {temperature}")
    return _array(logits) / temperature


def top_k_filter(logits, k):
    """Keep the k largest logits of each row, the others -inf (Fan et al., 2018).

    Exactly k tokens stay (ties at the k-th value are broken by the sort), or all V
    when k >= V. logits (B, V) -> (B, V).
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k_filter: expected an integer k >= 1, got {k!r}")
    z = _array(logits)
    xp = _backend.backend_of(z).xp
    rank = _ranks(z)                                                       # (B, V) 0 = largest
    return xp.where(rank < k, z, float("-inf"))                            # (B, V)


def top_p_filter(logits, p):
    """Keep the smallest set of most probable tokens whose probability reaches p
    (nucleus sampling, Holtzman et al., 2019), the others -inf.

    Sorted by probability, token i stays when the tokens before it hold less than p:

        keep_i  =  sum_{j < i} softmax(z)_j  <  p

    so the most probable token always stays, and the kept set is the first whose
    sum reaches p. p = 1 keeps every token. logits (B, V) -> (B, V).
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p_filter: expected p in (0, 1], got {p}")
    z = _array(logits)
    if p == 1.0:
        return z
    xp = _backend.backend_of(z).xp
    B = z.shape[0]
    order = xp.argsort(-z, axis=-1)                                        # (B, V) most probable first
    probs = _softmax(xp.take_along_axis(z, order, axis=-1))                # (B, V) sorted
    mass = probs.cumsum(axis=-1)                                           # (B, V)
    before = xp.concatenate([xp.zeros((B, 1), dtype=mass.dtype), mass[:, :-1]], axis=1)
    keep = xp.take_along_axis(before < p, xp.argsort(order, axis=-1), axis=-1)  # (B, V) unsorted
    return xp.where(keep, z, float("-inf"))                                # (B, V)


def sample(logits):
    """One token per row drawn from softmax(logits), on the logits' device.

    The Gumbel-max trick (Gumbel, 1954; Maddison et al., 2014): with independent
    g_v = -log(-log u_v), u_v ~ U(0, 1),

        P(argmax_v (z_v + g_v) = i) = exp(z_i) / sum_v exp(z_v),

    so no normalization and no cumulative sum are needed, and a token with z = -inf
    is never drawn. u is drawn in float64 from the backend's generator: u = 0, which
    would give g = -inf, has probability 2^-53 (in float32, 2^-24 per token: too
    often for a vocabulary of many thousands).

    logits (B, V) -> ids (B,) int64.
    """
    z = _array(logits)
    backend = _backend.backend_of(z)
    xp = backend.xp
    u = backend.rng.random(z.shape, dtype="float64")                       # (B, V)
    gumbel = -xp.log(-xp.log(u))                                           # (B, V)
    return (z.astype("float64") + gumbel).argmax(axis=-1)                  # (B,)


def next_token(logits, temperature=1.0, top_k=None, top_p=None):
    """The next token of each row: argmax at temperature 0, otherwise temperature,
    top-k, top-p, then a draw (the module docstring). logits (B, V) -> ids (B,)."""
    z = _array(logits)
    if temperature == 0:
        return z.argmax(axis=-1)                                           # (B,)
    z = apply_temperature(z, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return sample(z)                                                       # (B,)


# -- the loop ------------------------------------------------------------------

def generate(model, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             stop_id=None, use_cache=True, keep_logits=False):
    """Continue each prompt by up to ``max_new_tokens`` tokens.

    Args:
        model: a decoder-only LM with GPT's interface: ``model.config.block_size``,
            ``model.new_cache()``, ``model(idx, key_padding_mask=, cache=)`` -> (B, T, V).
            It runs in eval mode (no dropout) and without gradients; its mode is
            restored afterwards.
        prompts: a list of B prompts, each a non-empty list of token ids; lengths may differ.
        max_new_tokens: how many tokens to add at most.
        temperature: 0 for greedy search; otherwise the softmax temperature.
        top_k, top_p: the filters (None: off); see ``top_k_filter``, ``top_p_filter``.
        stop_id: a row stops when it draws this id (not returned); the batch stops
            when every row has.
        use_cache: feed one token per step to a key/value cache (False: recompute).
        keep_logits: also return each step's logits (``Generation.logits``).

    Returns:
        a ``Generation``: ``.tokens`` holds the new ids of each prompt.
    """
    _check_arguments(model, prompts, max_new_tokens, temperature, top_k, top_p, stop_id)
    modes = [(module, module.training) for module in model.modules()]    # parents first
    model.eval()
    try:
        with no_grad():
            return _generate(model, prompts, max_new_tokens, temperature, top_k, top_p,
                             stop_id, use_cache, keep_logits)
    finally:
        for module, training in modes:
            module.train(training)


def _generate(model, prompts, max_new_tokens, temperature, top_k, top_p, stop_id,
              use_cache, keep_logits):
    backend = _backend.backend_of(next(model.parameters()).data)
    xp = backend.xp
    block_size = model.config.block_size
    ids, padding = _left_padded(prompts, backend)                          # (B, L), (B, L)
    B = ids.shape[0]
    cache = model.new_cache() if use_cache else None
    cached = 0                                                             # columns of ids in the cache
    finished = xp.zeros((B,), dtype=bool)                                  # (B,)
    steps, step_logits = [], []
    checks = DeferredChecks()     # the embeddings' index checks: read once, at the end, not per token
    for _ in range(max_new_tokens):
        if ids.shape[1] > block_size:
            cache = None                                                   # the window slides from here on
        with checks:
            if cache is not None:
                logits = model(Tensor(ids[:, cached:]), key_padding_mask=Tensor(padding),
                               cache=cache)                                # (B, L or 1, V)
                cached = ids.shape[1]
            else:
                logits = model(Tensor(ids[:, -block_size:]),
                               key_padding_mask=Tensor(padding[:, -block_size:]))   # (B, <= block_size, V)
        logits = logits.data[:, -1]                                        # (B, V) the next token's
        token = next_token(logits, temperature, top_k, top_p)             # (B,)
        if stop_id is not None:
            finished = finished | (token == stop_id)                       # (B,) rows that have stopped
        steps.append(token)
        if keep_logits:
            step_logits.append(logits)
        ids = xp.concatenate([ids, token[:, None]], axis=1)                # (B, L + t + 1)
        padding = xp.concatenate([padding, xp.zeros((B, 1), dtype=bool)], axis=1)
        if stop_id is not None and bool(finished.all()):                   # the one sync per step
            break
    checks.raise_pending()
    return _collect(steps, step_logits, B, model.config.vocab_size, stop_id, keep_logits)


def _left_padded(prompts, backend):
    """The prompts as ids (B, L) int64 on ``backend``, left-padded with id 0 (any id
    would do: padding is masked), and the padding mask (B, L), True at padding."""
    L = max(len(prompt) for prompt in prompts)
    ids = np.zeros((len(prompts), L), dtype=np.int64)                     # host: built once
    padding = np.ones((len(prompts), L), dtype=bool)
    for b, prompt in enumerate(prompts):
        ids[b, L - len(prompt):] = prompt
        padding[b, L - len(prompt):] = False
    return backend.from_numpy(ids), backend.from_numpy(padding)


def _collect(steps, step_logits, B, V, stop_id, keep_logits):
    """The device results to host lists, each row cut at its stop token."""
    if not steps:                                                          # max_new_tokens = 0
        return Generation([[] for _ in range(B)],
                          [np.zeros((0, V)) for _ in range(B)] if keep_logits else None)
    xp = _backend.backend_of(steps[0]).xp
    rows = _backend.to_numpy(xp.stack(steps, axis=1)).tolist()             # B lists
    lengths = [row.index(stop_id) if stop_id in row else len(row) for row in rows]
    tokens = [row[:n] for row, n in zip(rows, lengths)]
    if not keep_logits:
        return Generation(tokens)
    logits = _backend.to_numpy(xp.stack(step_logits, axis=1))             # (B, n, V)
    steps_taken = [min(n + 1, len(row)) for row, n in zip(rows, lengths)]  # the stop step included
    return Generation(tokens, [logits[b, :n] for b, n in enumerate(steps_taken)])


# -- helpers -------------------------------------------------------------------

def _array(logits):
    """A Tensor's array, or the array itself."""
    return logits.data if isinstance(logits, Tensor) else logits


def _softmax(z):
    """softmax over the last axis of an array (minus the row's max: no overflow)."""
    xp = _backend.backend_of(z).xp
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ranks(z):
    """Each entry's rank in its row, 0 for the largest: (B, V) int."""
    xp = _backend.backend_of(z).xp
    order = xp.argsort(-z, axis=-1)                                        # (B, V) largest first
    return xp.argsort(order, axis=-1)                                      # the inverse permutation


def _check_arguments(model, prompts, max_new_tokens, temperature, top_k, top_p, stop_id):
    V = model.config.vocab_size
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"generate: expected a non-empty list of prompts (lists of token ids), "
                         f"got {prompts!r}")
    for b, prompt in enumerate(prompts):
        ids = np.asarray(prompt)
        if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
            raise ValueError(f"generate: prompt {b} must be a non-empty list of integer token ids, "
                             f"got {prompt!r}")
        if ids.min() < 0 or ids.max() >= V:
            raise ValueError(f"generate: prompt {b} holds token ids from {ids.min()} to {ids.max()}; "
                             f"expected ids in [0, {V})")
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"generate: expected an integer max_new_tokens >= 0, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"generate: expected a temperature >= 0 (0: greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"generate: expected top_k None or an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"generate: expected top_p None or in (0, 1], got {top_p}")
    if stop_id is not None and not 0 <= stop_id < V:
        raise ValueError(f"generate: expected stop_id None or in [0, {V}), got {stop_id}")
