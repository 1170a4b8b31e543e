"""BERT's masked-language-model corruption (Devlin, Chang, Lee & Toutanova, 2018, "BERT:
Pre-training of Deep Bidirectional Transformers for Language Understanding",
arXiv:1810.04805, §3.1 "Task #1: Masked LM" and Appendix A.1).

For each sequence of a batch:
    1. The eligible positions are those holding a real token: never padding, never [CLS],
       [SEP] or another special (ids 0 .. 6 of ``BERT_SPECIALS``; <unk> included, as there is
       nothing to learn in predicting it). Say n of them.
    2. Choose k = max(1, floor(0.15 n + 0.5)) of them (n >= 1; none when n = 0), uniformly at
       random without replacement: every eligible position is chosen with probability k / n.
       A fixed count per sequence, as in the authors' ``create_pretraining_data.py``
       (``max(1, round(len * masked_lm_prob))``), rather than a coin per position; here
       rounded half up, and counted over the real tokens only.
    3. Each chosen position, independently: with probability 0.8 its input becomes [MASK],
       with 0.1 a random real token (uniform over the ids 7 .. V - 1: never a special; it can
       happen to be the original token, as in the paper), with 0.1 it stays unchanged.
    4. The label of a chosen position is its original id; every other label is -100
       (``IGNORE_INDEX``, the ``ignore_index`` of ``cross_entropy``), so the loss is taken on
       the chosen positions only. Inputs at positions not chosen are unchanged.

Why 15% and why 80/10/10: every chosen token is a training signal, so a larger share trains
faster per sequence, but each masked token removes context the model needs to predict the
others; the paper takes 15%. [MASK] never occurs when the pre-trained model is fine-tuned or
used, so a model that only ever had to predict at [MASK] could ignore its representation of
every other token; replacing 10% by a random token and leaving 10% unchanged makes the model
keep a good representation of every input token, since any of them may have to be predicted
and may be wrong (the paper's "mismatch between pre-training and fine-tuning").

The draws are vectorized over the whole batch (one sort per batch to choose the positions,
no loop per token) and come from the NumPy Generator the caller passes: a Generator seeded
by (seed, step) makes the masks of a step reproducible.
"""
import numpy as np

from minigrad.data.vocab import BERT_SPECIALS, MASK_ID, DataError

__all__ = ["IGNORE_INDEX", "MASK_PROB", "MASK_SHARE", "RANDOM_SHARE", "FIRST_REAL_ID",
           "mask_tokens"]

IGNORE_INDEX = -100                     # label of a position the loss ignores (PyTorch's default)
MASK_PROB = 0.15                        # share of the real tokens chosen (step 2)
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1     # of the chosen: -> [MASK], -> random token; the rest stay
FIRST_REAL_ID = len(BERT_SPECIALS)      # ids below are specials (padding included)


def mask_tokens(tokens, vocab_size, rng, mask_prob=MASK_PROB):
    """(inputs, labels): ``tokens`` (B, T) corrupted as the module docstring says.

    tokens      (B, T) int   ids of [CLS] A [SEP] B [SEP] <pad> ... (any layout: the
                             specials and padding are found by their ids)
    vocab_size  V            the random replacements are drawn from ids 7 .. V - 1
    rng         numpy.random.Generator
    inputs      (B, T) int64 the model's input: [MASK], random or unchanged at the chosen
                             positions, ``tokens`` everywhere else
    labels      (B, T) int64 the original id at the chosen positions, -100 elsewhere
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise DataError(f"expected token ids of shape (B, T) and an integer dtype, got shape "
                        f"{tokens.shape} of {tokens.dtype}")
    if vocab_size <= FIRST_REAL_ID:
        raise DataError(f"expected a vocabulary with real tokens after the {FIRST_REAL_ID} "
                        f"specials, got vocab_size={vocab_size}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise DataError(f"expected token ids in 0..{vocab_size - 1}, got ids from "
                        f"{tokens.min()} to {tokens.max()}")
    if not 0 < mask_prob <= 1:
        raise DataError(f"mask_prob must be in (0, 1], got {mask_prob}")
    tokens = tokens.astype(np.int64, copy=False)
    B, T = tokens.shape

    eligible = tokens >= FIRST_REAL_ID                                      # (B, T) step 1
    n = eligible.sum(axis=1)                                                # (B,)
    k = np.where(n > 0, np.maximum(1, np.floor(mask_prob * n + 0.5)), 0).astype(np.int64)  # (B,)

    # Step 2: random keys, the ineligible ones above every eligible key; the k smallest
    # keys of a row are a uniform random choice of k of its eligible positions.
    keys = np.where(eligible, rng.random((B, T)), 2.0)                      # (B, T)
    kth = np.sort(keys, axis=1)[np.arange(B), np.maximum(k - 1, 0)]         # (B,) the k-th smallest
    chosen = (keys <= kth[:, None]) & (k[:, None] > 0)                      # (B, T)

    action = rng.random((B, T))                                             # (B, T) step 3
    to_mask = chosen & (action < MASK_SHARE)
    to_random = chosen & (action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)
    random_ids = rng.integers(FIRST_REAL_ID, vocab_size, size=(B, T))       # (B, T)
    inputs = np.where(to_mask, MASK_ID, np.where(to_random, random_ids, tokens))    # (B, T)
    labels = np.where(chosen, tokens, IGNORE_INDEX)                         # (B, T) step 4
    return inputs, labels
