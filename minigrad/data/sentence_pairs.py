"""BERT's pre-training batches: segment pairs for next-sentence prediction, masked for the
masked-language model (Devlin et al., 2018, arXiv:1810.04805, §3.1 and Appendix A.1).

Segments. A text is cut into paragraphs at blank lines, and each paragraph into segments:
    unit="line"       each non-blank line, surrounding spaces removed;
    unit="sentence"   the paragraph's lines joined by spaces and cut after ".", "!" or "?"
                      where whitespace and an upper-case letter or a quote follow.
Each segment is encoded by the tokenizer (one that has the BERT specials); a segment that
encodes to no token is left out. The true next segment of a segment is the one after it in
the same paragraph; a paragraph's last segment has none and is never an A.

A pair, as the paper's input layout:

    tokens     [CLS]  a_1 .. a_m  [SEP]  b_1 .. b_n  [SEP]  <pad> ..
    segments     0      0 .. 0      0      1 .. 1      1      0 ..
    padding      F      F .. F      F      F .. F      F      T ..

A is a segment that has a true next one. With probability 1/2, B is that next segment
(``nsp_labels`` IS_NEXT = 0); otherwise B is drawn uniformly from all the other segments
except A and its true next one (NOT_NEXT = 1), so a "random" B is never the true next. (The
paper draws the random B from another document and packs several sentences per segment up
to 512 tokens; here one segment is one line or sentence.) The label convention is the one of
the authors' code and of Hugging Face's ``next_sentence_label``: 0 means "B follows A".

Truncation: while m + n + 3 > ``max_len``, one token goes from the longer side (from B on a
tie), as the authors' ``truncate_seq_pair``; A loses its first tokens and B its last, so the
text on both sides of the middle [SEP] stays. Padding fills each batch to its longest pair.
Then ``mask_tokens`` chooses and corrupts 15% of the real tokens (``masking.py``).

Training batches (``batch``) draw B anchors uniformly, the coin, the random segments and the
masks from ``default_rng([seed, step])``: a resumed run draws the same batches. Evaluation
batches (``eval_batches``) take every A in text order, each batch's draws from
``default_rng([seed, batch number])`` with a fixed seed, so the same split always gives the
same pairs and masks and the metrics compare across epochs and runs.
"""
import re
from dataclasses import dataclass

import numpy as np

from minigrad.data.masking import mask_tokens
from minigrad.data.vocab import BERT_SPECIALS, CLS_ID, PAD_ID, SEP_ID, DataError

__all__ = ["IS_NEXT", "NOT_NEXT", "MLMBatch", "SentencePairs", "split_segments", "pack_pairs",
           "truncate_pair"]

IS_NEXT, NOT_NEXT = 0, 1
UNITS = ("line", "sentence")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“'‘(])")
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass
class MLMBatch:
    """B segment pairs, masked, padded to the longest (T); NumPy arrays:
        tokens        (B, T) int64  [CLS] A [SEP] B [SEP] <pad>.., after masking: the input
        segments      (B, T) int64  0 for [CLS] A [SEP], 1 for B [SEP], 0 at padding
        padding_mask  (B, T) bool   True at padding (minigrad's ``key_padding_mask``)
        mlm_labels    (B, T) int64  the original id at the chosen positions, -100 elsewhere
        nsp_labels    (B,)   int64  IS_NEXT (0) or NOT_NEXT (1)
    """

    tokens: np.ndarray
    segments: np.ndarray
    padding_mask: np.ndarray
    mlm_labels: np.ndarray
    nsp_labels: np.ndarray

    @property
    def num_masked(self):
        """Positions the masked-LM loss is taken on."""
        return int((self.mlm_labels >= 0).sum())


def split_segments(text, unit="line"):
    """The segments of ``text`` (str), paragraph by paragraph: a list of lists of str."""
    if unit not in UNITS:
        raise DataError(f"unit must be one of {UNITS}, got {unit!r}")
    paragraphs = []
    for paragraph in _BLANK_LINES.split(text):
        if unit == "line":
            segments = [line.strip() for line in paragraph.split("\n")]
        else:
            segments = _SENTENCE_END.split(" ".join(paragraph.split()))
        segments = [s for s in segments if s]
        if segments:
            paragraphs.append(segments)
    return paragraphs


def truncate_pair(m, n, max_len):
    """The lengths (m', n') that A and B (lengths m, n >= 1, arrays or ints) keep so that
    [CLS] A [SEP] B [SEP] fits in ``max_len``: the longer side shortened first (B on a tie).

    Closed form of "while m + n > L: shorten the longer" with L = max_len - 3: if the pair
    fits, nothing changes; if the shorter side s has s <= L // 2, it stays and the longer
    gets L - s; otherwise both end near the middle, A with L - L // 2 and B with L // 2.
    """
    m, n = np.asarray(m), np.asarray(n)
    L = max_len - 3
    shorter = np.minimum(m, n)
    fits = m + n <= L
    keeps_shorter = shorter <= L // 2
    m_kept = np.where(fits | (keeps_shorter & (m <= n)), m,
                      np.where(keeps_shorter, L - n, L - L // 2))
    n_kept = np.where(fits | (keeps_shorter & (n < m)), n,
                      np.where(keeps_shorter, L - m, L // 2))
    return m_kept, n_kept


def pack_pairs(first, second=None, max_len=512):
    """(tokens, segments, padding_mask), each (B, T): the unmasked inputs of the pairs
    ``first[i]``, ``second[i]`` (lists of ids, without specials) as [CLS] A [SEP] B [SEP],
    truncated by ``truncate_pair`` and padded to the longest; with ``second=None``, single
    segments [CLS] A [SEP] (A keeps its first max_len - 2 tokens): inputs for filling masks.
    """
    if len(first) == 0:
        raise DataError("expected at least one segment to pack, got none")
    if second is not None and len(second) != len(first):
        raise DataError(f"expected as many second segments as first ones, got {len(second)} "
                        f"and {len(first)}")
    if max_len < (5 if second is not None else 3):
        raise DataError(f"max_len must leave room for the specials and a token per segment, "
                        f"got {max_len}")
    B = len(first)
    rows, first_lengths = [], []             # the ids of each row; the length of [CLS] A [SEP]
    for i in range(B):
        a = list(first[i])
        if second is None:
            a = a[:max_len - 2]
            rows.append([CLS_ID, *a, SEP_ID])
        else:
            b = list(second[i])
            if not a or not b:
                raise DataError(f"pair {i}: expected two segments of at least one token, got "
                                f"lengths {len(a)} and {len(b)}")
            m, n = (int(length) for length in truncate_pair(len(a), len(b), max_len))
            a, b = a[len(a) - m:], b[:n]     # A keeps its end, B its start
            rows.append([CLS_ID, *a, SEP_ID, *b, SEP_ID])
        first_lengths.append(len(a) + 2)
    lengths = np.array([len(row) for row in rows])                          # (B,)
    T = int(lengths.max())
    tokens = np.full((B, T), PAD_ID, dtype=np.int64)                        # (B, T)
    segments = np.zeros((B, T), dtype=np.int64)                             # (B, T)
    for i, row in enumerate(rows):
        tokens[i, :len(row)] = row
        segments[i, first_lengths[i]:len(row)] = 1
    padding_mask = np.arange(T)[None, :] >= lengths[:, None]                # (B, T)
    return tokens, segments, padding_mask


class SentencePairs:
    """The segments of one text (one split), encoded, and BERT batches drawn from them.

        pairs = SentencePairs(train_text, tokenizer, unit="line")
        batch = pairs.batch(batch_size=32, max_len=128, seed=0, step=step)    # an MLMBatch
        for batch in SentencePairs(valid_text, tokenizer).eval_batches(32, 128): ...

    ``tokenizer`` must have the BERT specials (``build_tokenizer(kind, [train_text],
    specials=BERT_SPECIALS)``); ``num_segments`` and ``num_anchors`` (segments with a true
    next one: the number of evaluation pairs) say how much text there is.
    """

    def __init__(self, text, tokenizer, unit="line"):
        if getattr(tokenizer, "specials", None) != BERT_SPECIALS:
            raise DataError(f"expected a tokenizer with the BERT specials {BERT_SPECIALS} "
                            f"(fit it with specials=BERT_SPECIALS), got one with "
                            f"{getattr(tokenizer, 'specials', None)}")
        self.vocab_size = tokenizer.vocab_size
        self.segments, has_next = [], []
        for paragraph in split_segments(text, unit):
            encoded = [ids for ids in (tokenizer.encode(s) for s in paragraph) if ids]
            self.segments += encoded
            has_next += [True] * (len(encoded) - 1) + [False] * min(1, len(encoded))
        self.anchors = np.flatnonzero(has_next)           # (num_anchors,) A candidates
        if len(self.segments) < 3 or len(self.anchors) == 0:
            raise DataError(f"BERT's sentence pairs need at least 3 {unit}s and one paragraph "
                            f"of two or more, got {len(self.segments)} {unit}s in "
                            f"{len(self.segments) - len(self.anchors)} paragraphs")

    @property
    def num_segments(self):
        return len(self.segments)

    @property
    def num_anchors(self):
        return len(self.anchors)

    def _pairs(self, a, rng, max_len):
        """The masked ``MLMBatch`` of the A segments ``a`` (B,), the rest drawn from ``rng``."""
        B, S = len(a), len(self.segments)
        is_next = rng.random(B) < 0.5                                       # (B,)
        other = rng.integers(0, S - 2, size=B)                              # (B,) S - 2 choices:
        other = np.where(other >= a, other + 2, other)                      # skip a and a + 1
        b = np.where(is_next, a + 1, other)                                 # (B,)
        tokens, segments, padding_mask = pack_pairs([self.segments[i] for i in a],
                                                    [self.segments[i] for i in b], max_len)
        inputs, labels = mask_tokens(tokens, self.vocab_size, rng)          # (B, T), (B, T)
        nsp_labels = np.where(is_next, IS_NEXT, NOT_NEXT).astype(np.int64)  # (B,)
        return MLMBatch(inputs, segments, padding_mask, labels, nsp_labels)

    def batch(self, batch_size, max_len, seed, step):
        """The training ``MLMBatch`` of step ``step``: ``batch_size`` pairs, all draws from
        ``default_rng([seed, step])``."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        rng = np.random.default_rng([seed, step])
        a = self.anchors[rng.integers(0, len(self.anchors), size=batch_size)]   # (B,)
        return self._pairs(a, rng, max_len)

    def eval_batches(self, batch_size, max_len, seed=0):
        """A list of ``MLMBatch``es with every A once, in text order; batch j's draws from
        ``default_rng([seed, j])``: the same arguments always give the same batches."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        return [self._pairs(self.anchors[first:first + batch_size],
                            np.random.default_rng([seed, j]), max_len)
                for j, first in enumerate(range(0, len(self.anchors), batch_size))]
