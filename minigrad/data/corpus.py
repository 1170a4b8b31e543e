"""Parallel corpora from tab-separated files, and a seeded train/valid/test split.

The file format is the one of the Tatoeba and Anki ("manythings.org") exports:

    Go.<TAB>Va !<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250

one pair per line, the source before the first tab, the target after it, further columns
(the attribution) ignored. The file is UTF-8, a byte-order mark at its start is tolerated,
line ends may be LF or CRLF, blank lines are skipped.

Each field is cleaned in this order:
    1. lower-cased (``lowercase=True``);
    2. Unicode-normalized (``normalize``: "NFC" composes "e" + U+0301 into "é", so that one
       letter is one symbol for the tokenizers; "NFKC" also folds compatibility forms such
       as "ﬁ" -> "fi"; None keeps the text as it is);
    3. punctuation split off (``split_punctuation=True``): a space on each side of every
       character of Unicode category P* (".", ",", "¿", "«", the apostrophe of "don't"), so
       that "Hello, world!" becomes "Hello , world !";
    4. whitespace collapsed: leading and trailing whitespace removed, runs inside the text
       become one space (word and BPE tokenizers split on whitespace, so this changes no
       tokens, and references compare equal to decoded outputs).
Then the length filter keeps a pair only if both sides have between ``min_length`` and
``max_length`` words (whitespace-separated, counted after cleaning).
"""
import os
import random
import unicodedata
from dataclasses import dataclass

from minigrad.data.vocab import DataError

__all__ = ["load_tsv", "load_corpus", "Corpus", "split_pairs", "clean_text", "detokenize"]

NORMALIZATIONS = (None, "NFC", "NFKC", "NFD", "NFKD")
_SHOWN_CHARS = 60                                 # how much of a bad line an error shows


def clean_text(text, normalize="NFC", lowercase=False, split_punctuation=False):
    """One field cleaned as the module docstring says (steps 1-4)."""
    if lowercase:
        text = text.lower()
    if normalize is not None:
        text = unicodedata.normalize(normalize, text)
    if split_punctuation:
        text = "".join(f" {ch} " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


#: Punctuation that joins the word before it ("word ." -> "word."), the word after it
#: ("( word" -> "(word"), or both ("l ' ai" -> "l'ai", "Max - Diamand" -> "Max-Diamand").
_JOINS_LEFT = set(".,!?;:)]}»%…”›")
_JOINS_RIGHT = set("([{«¿¡“‹")
_JOINS_BOTH = set("'’-/")


def detokenize(text):
    """Undo ``split_punctuation``: punctuation back against the words it was split from.

        "aujourd ' hui , je vais à l ' école ."  ->  "aujourd'hui, je vais à l'école."
        "c ' est ( très ) bien !"                 ->  "c'est (très) bien!"

    The spaces the cleaning added cannot be told from spaces the text had, so this is a
    convention (English typography: no space before . , ! ? ; :), not an exact inverse;
    sacreBLEU's own tokenization splits punctuation again, so BLEU does not depend on it.
    """
    out = []
    glue_next = False
    for piece in text.split():
        if out and (glue_next or piece in _JOINS_LEFT or piece in _JOINS_BOTH):
            out[-1] += piece
        else:
            out.append(piece)
        glue_next = piece in _JOINS_RIGHT or piece in _JOINS_BOTH
    return " ".join(out)


def _shown(line):
    return repr(line if len(line) <= _SHOWN_CHARS else line[:_SHOWN_CHARS] + "...")


def _lines(path):
    """(line number, text) of each line of the UTF-8 file at ``path``, line ends removed."""
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"no such data file: {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected a data file, got a directory: {path}") from None
    with file:
        for number, raw in enumerate(file, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]                     # the UTF-8 byte-order mark
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: expected UTF-8 text, got the bytes "
                                f"{raw[error.start:error.start + 4]!r}") from None


@dataclass
class Corpus:
    """A parallel corpus as read: cleaned pairs, the targets as written, what was dropped.

        pairs        [(source, target)] cleaned as the module docstring says
        raw_targets  the target of each pair as the file has it (only the Unicode
                     normalization applied): the references BLEU is computed against
        dropped      pairs outside the length range
    """

    pairs: list
    raw_targets: list
    dropped: int


def load_tsv(path, normalize="NFC", lowercase=False, split_punctuation=False,
             min_length=1, max_length=None, max_pairs=None):
    """The (source, target) pairs of a tab-separated file, cleaned and length-filtered
    (``load_corpus(...).pairs``)."""
    return load_corpus(path, normalize, lowercase, split_punctuation, min_length, max_length, max_pairs).pairs


def load_corpus(path, normalize="NFC", lowercase=False, split_punctuation=False,
                min_length=1, max_length=None, max_pairs=None):
    """The ``Corpus`` of a tab-separated file: pairs cleaned and length-filtered.

    ``max_pairs`` keeps the first that many pairs that pass the filter (None: all).
    Raises ``DataError`` naming ``path:line`` for a line without a tab or with an empty
    side, and for a missing file, bad options, or no pairs left at all.
    """
    if normalize not in NORMALIZATIONS:
        raise DataError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if min_length < 0 or (max_length is not None and max_length < min_length):
        raise DataError(f"expected 0 <= min_length <= max_length, got min_length={min_length}, "
                        f"max_length={max_length}")
    if max_pairs is not None and max_pairs < 1:
        raise DataError(f"max_pairs must be None or >= 1, got {max_pairs}")
    path = os.fspath(path)
    pairs, raw_targets, dropped = [], [], 0
    for number, line in _lines(path):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{path}:{number}: expected source<TAB>target, found no tab in "
                            f"{_shown(line)}")
        fields = line.split("\t")[:2]
        source, target = (clean_text(field, normalize, lowercase, split_punctuation) for field in fields)
        if not source or not target:
            side = "source" if not source else "target"
            raise DataError(f"{path}:{number}: the {side} is empty in {_shown(line)}")
        lengths = len(source.split()), len(target.split())
        if any(n < min_length or (max_length is not None and n > max_length) for n in lengths):
            dropped += 1
            continue
        pairs.append((source, target))
        raw_targets.append(clean_text(fields[1], normalize))
        if max_pairs is not None and len(pairs) == max_pairs:
            break
    if not pairs:
        reason = (f" ({dropped} pairs outside the length range [{min_length}, {max_length}])"
                  if dropped else "")
        raise DataError(f"no pairs in {path}{reason}")
    return Corpus(pairs, raw_targets, dropped)


def split_pairs(pairs, valid=0.1, test=0.1, seed=0):
    """(train, valid, test): a seeded shuffle of ``pairs`` cut by the fractions given.

    Each part gets round(fraction * len(pairs)) pairs but at least one; train the rest,
    also at least one, so at least 3 pairs are needed.
    """
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise DataError(f"expected valid and test fractions in (0, 1) with a sum below 1, got "
                        f"valid={valid}, test={test}")
    n = len(pairs)
    if n < 3:
        raise DataError(f"a train/valid/test split needs at least 3 pairs, got {n}")
    n_valid, n_test = max(1, round(valid * n)), max(1, round(test * n))
    while n - n_valid - n_test < 1:               # rounding up left no training pair
        if n_valid >= n_test:
            n_valid -= 1
        else:
            n_test -= 1
    order = list(range(n))
    random.Random(seed).shuffle(order)
    parts = order[:n - n_valid - n_test], order[n - n_valid - n_test:n - n_test], order[n - n_test:]
    return tuple([pairs[i] for i in part] for part in parts)
