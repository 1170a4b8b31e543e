"""Tokenizers: text <-> lists of integer ids, by character, by word, or by BPE sub-word.

Every vocabulary starts with the special tokens of ``vocab.py`` (<pad> <bos> <eos> <unk>
at ids 0..3; with ``fit(..., specials=BERT_SPECIALS)`` also [CLS] [SEP] [MASK] at ids 4..6),
then the symbols learned by ``fit`` from the training texts, the most frequent first (ties
in Unicode order), so a fit is deterministic and independent of the order of the texts.

A tokenizer with the BERT specials reads "[CLS]", "[SEP]" and "[MASK]" written in a text as
those tokens, for every kind ("the [MASK] sat" -> ids of "the ", 6, ids of " sat" by
character); ``fit`` never learns symbols from those strings.

    encode(text) -> ids     no <bos>/<eos> added (batching adds them); a symbol not in the
                            vocabulary becomes <unk>; encode never gives <pad>/<bos>/<eos>
    decode(ids)  -> text    stops at the first <eos>, skips <pad> and <bos>, writes <unk>
    pieces(ids)  -> strs    the vocabulary entry of every id, specials included (plot labels)

Round trips: ``decode(encode(t)) == t`` for the character tokenizer; for the word and BPE
tokenizers ``decode(encode(t)) == " ".join(t.split())`` (they split on whitespace), as long
as every character of ``t`` was seen while fitting (and, for the word tokenizer, every word).
Texts containing the special strings themselves (or, for BPE, the marker "</w>") are the
one exception: those strings are reserved.
"""
import bisect
import heapq
import inspect
import re
from collections import Counter, defaultdict

from minigrad.data.vocab import BERT_SPECIALS, BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, DataError

__all__ = ["Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer", "build_tokenizer",
           "tokenizer_from_dict", "END_OF_WORD"]

END_OF_WORD = "</w>"

# The BERT specials as a text may write them: ``split`` gives text, special, text, ...
_WRITTEN_SPECIALS = re.compile("(" + "|".join(map(re.escape, BERT_SPECIALS[len(SPECIALS):])) + ")")


def _checked_specials(specials):
    specials = list(specials)
    if specials not in (SPECIALS, BERT_SPECIALS):
        raise DataError(f"specials must be SPECIALS {SPECIALS} or BERT_SPECIALS {BERT_SPECIALS}, "
                        f"got {specials}")
    return specials


def _plain_parts(texts, specials):
    """The parts of ``texts`` between the BERT specials written in them (all of each text for
    a tokenizer without those): what ``fit`` learns from, as ``encode`` cuts it."""
    if specials == SPECIALS:
        return list(texts)
    return [part for text in texts for part in _WRITTEN_SPECIALS.split(text)[::2]]


def _ranked(counts, min_freq=1, max_size=None, specials=SPECIALS):
    """Symbols with count >= min_freq, most frequent first, ties in Unicode order."""
    symbols = sorted((s for s, c in counts.items() if c >= min_freq and s not in specials),
                     key=lambda s: (-counts[s], s))
    return symbols if max_size is None else symbols[:max_size]


class Tokenizer:
    """Base class: a vocabulary (list of str, ``SPECIALS`` or ``BERT_SPECIALS`` first) and the
    id lookups. ``specials`` is the list the vocabulary starts with.

    A subclass says how a text splits into pieces (``_split``) and how pieces join back
    into a text (``_join``).
    """

    kind = None

    def __init__(self, vocab):
        vocab = list(vocab)
        if vocab[:len(SPECIALS)] != SPECIALS:
            raise DataError(f"a vocabulary must start with {SPECIALS}, got {vocab[:len(SPECIALS)]}")
        if len(set(vocab)) != len(vocab):
            repeated = sorted(s for s, c in Counter(vocab).items() if c > 1)
            raise DataError(f"a vocabulary must not repeat a symbol, got {repeated[:5]} twice")
        self.vocab = vocab
        self.specials = BERT_SPECIALS if vocab[:len(BERT_SPECIALS)] == BERT_SPECIALS else SPECIALS
        # text symbol -> id; <pad>, <bos> and <eos> are control tokens, never read from text
        self._ids = {s: i for i, s in enumerate(vocab) if i not in (PAD_ID, BOS_ID, EOS_ID)}

    @property
    def vocab_size(self):
        return len(self.vocab)

    def _split(self, text):
        raise NotImplementedError

    def _join(self, pieces):
        raise NotImplementedError

    def encode(self, text):
        """The ids of ``text`` (a str), unknown symbols as ``UNK_ID``; with the BERT specials,
        "[CLS]", "[SEP]" and "[MASK]" in the text as their ids."""
        if self.specials == SPECIALS:
            return [self._ids.get(piece, UNK_ID) for piece in self._split(text)]
        ids = []
        for k, part in enumerate(_WRITTEN_SPECIALS.split(text)):
            if k % 2 == 1:                        # a special written in the text
                ids.append(self._ids[part])
            else:
                ids += [self._ids.get(piece, UNK_ID) for piece in self._split(part)]
        return ids

    def _checked(self, ids):
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < len(self.vocab):
                raise DataError(f"token id {i} is outside the vocabulary of {len(self.vocab)} "
                                f"symbols (ids 0..{len(self.vocab) - 1})")
        return ids

    def decode(self, ids):
        """The text of ``ids`` up to the first <eos>, <pad> and <bos> left out."""
        pieces = []
        for i in self._checked(ids):
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                pieces.append(self.vocab[i])
        return self._join(pieces)

    def pieces(self, ids):
        """The vocabulary entry of every id, specials included: labels for plots."""
        return [self.vocab[i] for i in self._checked(ids)]

    def to_dict(self):
        """A JSON-able description: ``tokenizer_from_dict`` rebuilds the same tokenizer."""
        return {"kind": self.kind, "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, d):
        fields = dict(d)
        if fields.pop("kind", None) != cls.kind:
            raise DataError(f"expected a tokenizer of kind {cls.kind!r}, got {d.get('kind')!r}")
        expected = list(inspect.signature(cls).parameters)
        if sorted(fields) != sorted(expected):
            raise DataError(f"a {cls.kind!r} tokenizer description needs the fields "
                            f"{['kind', *expected]}, got {list(d)}")
        return cls(**fields)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One token per Unicode code point, spaces included; decode joins with ""."""

    kind = "char"

    @classmethod
    def fit(cls, texts, min_freq=1, specials=SPECIALS):
        """The characters of ``texts`` seen at least ``min_freq`` times, after ``specials``."""
        specials = _checked_specials(specials)
        counts = Counter(ch for text in _plain_parts(texts, specials) for ch in text)
        return cls(specials + _ranked(counts, min_freq, specials=specials))

    def _split(self, text):
        return list(text)

    def _join(self, pieces):
        return "".join(pieces)


class WordTokenizer(Tokenizer):
    """One token per whitespace-separated word; decode joins with one space."""

    kind = "word"

    @classmethod
    def fit(cls, texts, min_freq=1, max_size=None, specials=SPECIALS):
        """The words of ``texts`` seen at least ``min_freq`` times, at most ``max_size`` of
        them (the most frequent; the ``specials`` come on top)."""
        specials = _checked_specials(specials)
        counts = Counter(word for text in _plain_parts(texts, specials) for word in text.split())
        return cls(specials + _ranked(counts, min_freq, max_size, specials))

    def _split(self, text):
        return text.split()

    def _join(self, pieces):
        return " ".join(pieces)


class BPETokenizer(Tokenizer):
    """Byte-pair encoding of words into sub-words (Sennrich, Haddow & Birch, 2016,
    "Neural Machine Translation of Rare Words with Subword Units", arXiv:1508.07909, §3.2).

    Learning (``fit``), the paper's Algorithm 1:
        1. Count the whitespace-separated words of the texts. Write each word as its
           characters plus the end-of-word marker: "lower" -> l o w e r </w>.
           The symbol vocabulary starts as all characters and </w>.
        2. Count every adjacent symbol pair over all words, each word weighted by its count.
        3. Take the most frequent pair (a, b) (ties: the smallest pair in Unicode order,
           so the result never depends on dict order); stop if it occurs fewer than
           ``min_freq`` times. Replace every a b, left to right, by the new symbol ab;
           add ab to the vocabulary and (a, b) to the list of merges.
        4. Repeat 2-3 ``num_merges`` times, or until the vocabulary has ``vocab_size``
           symbols (specials included).
    Counting is incremental: after a merge only the words that contained the pair are
    recounted, as in the authors' released code (subword-nmt); the paper's short listing
    recounts all words at every step, which gives the same merges, only slower.

    Encoding a word: its characters plus </w>, then the merges applied in the order they
    were learned, each to all its occurrences left to right — exactly what learning did to
    the training words. (A pair can be learned twice, when a later merge re-creates one of
    its symbols; encoding then applies it at both places in the list, as learning did.)
    A character never seen in training is <unk>.

    Decoding: concatenate the pieces; a piece ending in </w> ends a word; words are joined
    by single spaces.
    """

    kind = "bpe"

    def __init__(self, vocab, merges):
        super().__init__(vocab)
        self.merges = [tuple(pair) for pair in merges]
        known = set(self.vocab)
        for pair in self.merges:
            if len(pair) != 2 or any(s not in known for s in (*pair, pair[0] + pair[1])):
                raise DataError(f"a BPE merge must join two vocabulary symbols into one, got {pair}")
        self._ranks = defaultdict(list)           # pair -> its ranks (a pair can come back)
        for rank, pair in enumerate(self.merges):
            self._ranks[pair].append(rank)
        self._cache = {}                          # word -> its pieces

    @classmethod
    def fit(cls, texts, num_merges=1000, min_freq=2, vocab_size=None, specials=SPECIALS):
        specials = _checked_specials(specials)
        words = Counter(word for text in _plain_parts(texts, specials) for word in text.split())
        chars = Counter()
        for word, count in words.items():
            for ch in word:
                chars[ch] += count
        vocab = specials + [END_OF_WORD] + _ranked(chars, specials=specials)
        symbols = [list(word) + [END_OF_WORD] for word in words]          # step 1
        counts = list(words.values())

        pair_counts = Counter()                   # step 2: (a, b) -> weighted count
        where = defaultdict(set)                  # (a, b) -> indices of words that have it
        for w, word in enumerate(symbols):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += counts[w]
                where[pair].add(w)
        heap = [(-c, pair) for pair, c in pair_counts.items()]            # largest count, then
        heapq.heapify(heap)                                               # smallest pair first

        merges, known = [], set(vocab)
        while len(merges) < num_merges and (vocab_size is None or len(vocab) < vocab_size):
            while heap and -heap[0][0] != pair_counts.get(heap[0][1], 0):
                heapq.heappop(heap)                                       # an outdated count
            if not heap or -heap[0][0] < min_freq:
                break
            _, best = heapq.heappop(heap)                                 # step 3
            merged = best[0] + best[1]
            merges.append(best)
            if merged not in known:
                known.add(merged)
                vocab.append(merged)
            changed = set()
            for w in where.pop(best):
                old = symbols[w]
                new = _merge(old, best, merged)
                if new == old:
                    continue
                for pair in zip(old, old[1:]):
                    pair_counts[pair] -= counts[w]
                    changed.add(pair)
                for pair in zip(new, new[1:]):
                    pair_counts[pair] += counts[w]
                    where[pair].add(w)
                    changed.add(pair)
                symbols[w] = new
            for pair in changed:
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair))
                else:
                    del pair_counts[pair]
        return cls(vocab, merges)

    def _word_pieces(self, word):
        if word not in self._cache:
            symbols = list(word) + [END_OF_WORD]
            last = -1                             # rank of the last merge applied
            while True:
                later = [self._next_rank(pair, last) for pair in zip(symbols, symbols[1:])]
                later = [r for r in later if r is not None]
                if not later:
                    break
                last = min(later)                 # the next merge in learned order that applies
                pair = self.merges[last]
                symbols = _merge(symbols, pair, pair[0] + pair[1])
            self._cache[word] = symbols
        return self._cache[word]

    def _next_rank(self, pair, last):
        """The first rank after ``last`` at which ``pair`` was merged, or None."""
        ranks = self._ranks.get(pair, ())
        k = bisect.bisect_right(ranks, last)
        return ranks[k] if k < len(ranks) else None

    def _split(self, text):
        return [piece for word in text.split() for piece in self._word_pieces(word)]

    def _join(self, pieces):
        words, current = [], ""
        for piece in pieces:
            if piece.endswith(END_OF_WORD):
                words.append(current + piece[:-len(END_OF_WORD)])
                current = ""
            else:
                current += piece
        if current:                               # a last word cut off before its </w>
            words.append(current)
        return " ".join(words)

    def to_dict(self):
        return {**super().to_dict(), "merges": [list(pair) for pair in self.merges]}


def _merge(symbols, pair, merged):
    """``symbols`` with every occurrence of ``pair`` replaced by ``merged``, left to right."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}


def build_tokenizer(kind, texts, **options):
    """A tokenizer of ``kind`` ("char", "word" or "bpe") fitted on ``texts``; ``options``
    go to its ``fit`` (min_freq, max_size, num_merges, vocab_size, specials)."""
    if kind not in TOKENIZERS:
        raise DataError(f"unknown tokenizer {kind!r}; expected one of: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind].fit(texts, **options)


def tokenizer_from_dict(d):
    """The tokenizer that ``to_dict`` described (read back from a run's JSON config)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in TOKENIZERS:
        raise DataError(f"expected a tokenizer description with kind in {list(TOKENIZERS)}, "
                        f"got kind {kind!r}")
    return TOKENIZERS[kind].from_dict(d)
