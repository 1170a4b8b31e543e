"""Batches for sequence-to-sequence training: padded id arrays, lengths and masks.

For a pair with source ids x_1..x_m and target ids y_1..y_n (no specials), a batch holds

    src      x_1 ... x_m  <pad> ...          the encoder's input
    tgt_in   <bos> y_1 ... y_n  <pad> ...    the decoder's input (teacher forcing)
    tgt_out  y_1 ... y_n <eos>  <pad> ...    what the decoder must predict at each step

so tgt_in and tgt_out have one row each of length n + 1 before padding, and tgt_out is
tgt_in shifted one step left. Masks are True at padding, minigrad's convention
(``key_padding_mask`` of ``MultiheadAttention``; a loss ignores those positions).

``batches`` puts pairs of similar lengths together, so that little of a batch is padding:
it shuffles the pairs, sorts each pool of ``pool_batches`` batches' worth by length, cuts
the pool into batches and shuffles the batch order (the "bucketing" of most NMT toolkits).
"""
from dataclasses import dataclass

import numpy as np

from minigrad.data.vocab import BOS_ID, EOS_ID, PAD_ID, DataError

__all__ = ["Batch", "encode_pairs", "make_batch", "batches"]


@dataclass
class Batch:
    """One batch of B pairs, all NumPy int64 arrays padded with ``PAD_ID``.

    Shapes (S: longest source, T: longest target + 1):
        src          (B, S)   source ids
        src_lengths  (B,)     true source lengths, >= 1
        tgt_in       (B, T)   <bos> + target ids
        tgt_out      (B, T)   target ids + <eos>
        tgt_lengths  (B,)     len(target) + 1: the non-padding length of tgt_in and tgt_out
    """

    src: np.ndarray
    src_lengths: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    tgt_lengths: np.ndarray

    @property
    def num_tokens(self):
        """Target tokens predicted in this batch (<eos> included): sum of ``tgt_lengths``."""
        return int(self.tgt_lengths.sum())

    @property
    def src_mask(self):
        """(B, S) bool, True at padding."""
        return np.arange(self.src.shape[1])[None, :] >= self.src_lengths[:, None]

    @property
    def tgt_mask(self):
        """(B, T) bool, True at padding."""
        return np.arange(self.tgt_in.shape[1])[None, :] >= self.tgt_lengths[:, None]


def encode_pairs(pairs, src_tokenizer, tgt_tokenizer):
    """[(src_ids, tgt_ids)] for text ``pairs``; a source must give at least one token."""
    encoded = []
    for index, (source, target) in enumerate(pairs):
        src_ids = src_tokenizer.encode(source)
        if not src_ids:
            raise DataError(f"pair {index}: expected a source of at least one token, "
                            f"got {source!r}, which encodes to none")
        encoded.append((src_ids, tgt_tokenizer.encode(target)))
    return encoded


def make_batch(encoded_pairs):
    """The padded ``Batch`` of a list of (src_ids, tgt_ids)."""
    if not encoded_pairs:
        raise DataError("expected at least one pair to make a batch, got none")
    src_lengths = np.array([len(s) for s, _ in encoded_pairs], dtype=np.int64)      # (B,)
    tgt_lengths = np.array([len(t) + 1 for _, t in encoded_pairs], dtype=np.int64)  # (B,)
    if src_lengths.min() < 1:
        raise DataError(f"expected every source to have at least one token, pair "
                        f"{int(src_lengths.argmin())} has none")
    B, S, T = len(encoded_pairs), int(src_lengths.max()), int(tgt_lengths.max())
    src = np.full((B, S), PAD_ID, dtype=np.int64)                                   # (B, S)
    tgt_in = np.full((B, T), PAD_ID, dtype=np.int64)                                # (B, T)
    tgt_out = np.full((B, T), PAD_ID, dtype=np.int64)                               # (B, T)
    for b, (source, target) in enumerate(encoded_pairs):
        src[b, :len(source)] = source
        tgt_in[b, :len(target) + 1] = [BOS_ID, *target]
        tgt_out[b, :len(target) + 1] = [*target, EOS_ID]
    return Batch(src, src_lengths, tgt_in, tgt_out, tgt_lengths)


def batches(encoded_pairs, batch_size, shuffle=True, seed=0, epoch=0, pool_batches=50):
    """All of ``encoded_pairs`` as a list of ``Batch``es of at most ``batch_size`` pairs.

    shuffle=False: batches in the input order (evaluation, samples).
    shuffle=True: pairs of similar length together, in an order drawn from (seed, epoch):
        1. shuffle the pairs;
        2. cut them into pools of ``pool_batches * batch_size`` pairs and sort each pool by
           (source length, target length), which keeps the shuffled order among equals;
        3. cut each pool into batches;
        4. shuffle the order of the batches.
    Each epoch gets another order; the same (seed, epoch) always gives the same batches.
    """
    for name, value in (("batch_size", batch_size), ("pool_batches", pool_batches)):
        if not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be an integer >= 1, got {value!r}")
    n = len(encoded_pairs)
    if not shuffle:
        groups = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    else:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n).tolist()                                         # step 1
        pool = pool_batches * batch_size
        groups = []
        for start in range(0, n, pool):
            members = sorted(order[start:start + pool],                            # step 2
                             key=lambda i: (len(encoded_pairs[i][0]), len(encoded_pairs[i][1])))
            groups += [members[k:k + batch_size] for k in range(0, len(members), batch_size)]
        groups = [groups[k] for k in rng.permutation(len(groups))]                  # step 4
    return [make_batch([encoded_pairs[i] for i in group]) for group in groups]
