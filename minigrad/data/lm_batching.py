"""Batches for a next-token language model (GPT): windows of a token stream and their targets.

A window of T + 1 consecutive ids w_0 .. w_T of the stream gives one row of a batch:

    x   w_0  w_1  ...  w_{T-1}        the model's input
    y   w_1  w_2  ...  w_T            the target at each position: the next token

so y is x shifted one step left, and position t predicts w_{t+1} from w_0 .. w_t.

Training (``lm_batch``): B windows at random start positions, uniform over all the windows
that fit in the training ids (nanoGPT's ``get_batch``). The starts are drawn from a NumPy
Generator seeded by (seed, step) alone, so the batch of a step does not depend on the
batches before it: a run resumed at step s draws exactly the batches an uninterrupted run
draws from step s on. Windows may overlap; over many steps every position is drawn alike.

Evaluation (``lm_eval_batches``): the stream cut into consecutive non-overlapping windows,
so that each of its N - 1 targets (every id but the first) is predicted exactly once and
the mean loss over all targets is the split's loss in nats per token. The windows of full
length T go in batches of B rows (the last batch may have fewer); the rest, r < T targets,
is not dropped but comes last, as a batch of one row of length r. Each window starts
without the context before it, so this loss is a little higher than a sliding window's.
"""
from dataclasses import dataclass

import numpy as np

from minigrad.data.vocab import DataError

__all__ = ["LMBatch", "lm_batch", "lm_eval_batches"]


@dataclass
class LMBatch:
    """B windows of a token stream, NumPy int64 arrays:
        x   (B, T)   input ids
        y   (B, T)   target ids: y[b, t] is the id after x[b, t] in the stream
    """

    x: np.ndarray
    y: np.ndarray

    @property
    def num_tokens(self):
        """Targets in this batch: B * T."""
        return int(self.y.size)


def _checked_ids(ids):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"expected a 1-D array of integer token ids, got shape {ids.shape} of "
                        f"{ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _checked_count(value, name, minimum):
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")


def lm_batch(ids, batch_size, block_size, seed, step):
    """The training ``LMBatch`` of step ``step``: ``batch_size`` random windows of
    ``block_size`` + 1 ids of ``ids`` (N,), drawn from ``default_rng([seed, step])``.

    x, y: (B, T) with B = batch_size, T = block_size.
    """
    ids = _checked_ids(ids)
    _checked_count(batch_size, "batch_size", 1)
    _checked_count(block_size, "block_size", 1)
    _checked_count(seed, "seed", 0)
    _checked_count(step, "step", 0)
    N, B, T = len(ids), batch_size, block_size
    if N < T + 1:
        raise DataError(f"a window of block_size + 1 = {T + 1} tokens does not fit in the "
                        f"{N} tokens of the training text: lower the block size or give a "
                        f"longer text")
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, N - T, size=B)                  # (B,) start + T <= N - 1: all fit
    positions = starts[:, None] + np.arange(T)               # (B, T)
    return LMBatch(x=ids[positions], y=ids[positions + 1])   # (B, T), (B, T)


def lm_eval_batches(ids, batch_size, block_size):
    """The ``LMBatch``es that cover ``ids`` (N,) with non-overlapping windows, in order:
    full windows (T = block_size) in batches of at most ``batch_size`` rows, then the
    remaining r = (N - 1) mod T targets as one (1, r) batch. Together they hold each of the
    N - 1 targets once: ``sum(b.num_tokens for b in lm_eval_batches(...)) == N - 1``.
    """
    ids = _checked_ids(ids)
    _checked_count(batch_size, "batch_size", 1)
    _checked_count(block_size, "block_size", 1)
    N, B, T = len(ids), batch_size, block_size
    if N < 2:
        raise DataError(f"an evaluation split needs at least 2 tokens (one input, one target), "
                        f"got {N}")
    num_windows = (N - 1) // T
    for first in range(0, num_windows, B):
        rows = np.arange(first, min(first + B, num_windows))      # (b,) window numbers
        positions = rows[:, None] * T + np.arange(T)                # (b, T)
        yield LMBatch(x=ids[positions], y=ids[positions + 1])     # (b, T), (b, T)
    start = num_windows * T
    if start < N - 1:
        yield LMBatch(x=ids[None, start:N - 1], y=ids[None, start + 1:N])   # (1, r), (1, r)
