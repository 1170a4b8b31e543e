"""Plain-text corpora: a UTF-8 file read whole, and its contiguous train/valid/test split.

A language model trains on one long text. Reading it (``load_text``):
    1. the file's bytes are decoded as UTF-8 (a byte-order mark at its start is dropped); a
       byte that is not UTF-8 is a ``DataError`` naming its byte offset, line and column;
    2. line ends become "\\n" (CRLF and a lone CR included);
    3. the text is lower-cased (``lowercase=True``) and Unicode-normalized (``normalize``,
       "NFC" by default: one letter is one code point, as in ``corpus.clean_text``).
Spaces and line breaks are kept: a character-level model learns the layout too.

Splitting (``split_text``): the first ``1 - valid - test`` of the text trains, the next
``valid`` validates, the last ``test`` tests (default 90% / 5% / 5%), each part one
contiguous piece, in order. The cut is made in characters, before tokenization, so that the
tokenizer is fitted on the training part alone: nothing of the test text (not even its
alphabet) reaches training; a symbol that only valid or test has becomes <unk>.
Each cut sits at the start of the line nearest to its share (a text without line breaks
is cut at the character), so no line is split between two parts; a part's share is then
exact up to the length of one line.

    text = load_text("input.txt")                 # or builtin_corpus("python-docs")
    train, valid, test = split_text(text)
    tokenizer = build_tokenizer("char", [train])
    train_ids, valid_ids, test_ids = (encode_text(part, tokenizer) for part in (train, valid, test))
"""
import os
import unicodedata

import numpy as np

from minigrad.data.corpus import NORMALIZATIONS
from minigrad.data.vocab import DataError

__all__ = ["load_text", "split_text", "encode_text"]

_BOM = b"\xef\xbb\xbf"


def load_text(path, normalize="NFC", lowercase=False, min_chars=1):
    """The text of the UTF-8 file at ``path``, read as the module docstring says (steps 1-3).

    Raises ``DataError`` for a missing file, a directory, bytes that are not UTF-8, a text
    that is empty or only whitespace, or one shorter than ``min_chars`` characters.
    """
    if normalize not in NORMALIZATIONS:
        raise DataError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"expected a text file, got a directory: {path}")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise DataError(f"no such text file: {path}") from None
    except OSError as error:
        raise DataError(f"cannot read the text file {path}: {error.strerror}") from None
    skipped = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skipped:].decode("utf-8")                                       # step 1
    except UnicodeDecodeError as error:
        offset = skipped + error.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        raise DataError(f"{path}:{line}: expected UTF-8 text, got the bytes "
                        f"{data[offset:offset + 4]!r} at byte offset {offset} (line {line}, "
                        f"column {column})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")                           # step 2
    if lowercase:                                                                   # step 3
        text = text.lower()
    if normalize is not None:
        text = unicodedata.normalize(normalize, text)
    if not text.strip():
        raise DataError(f"{path}: expected a text, got "
                        f"{'an empty file' if not text else 'only whitespace'}")
    if len(text) < min_chars:
        raise DataError(f"{path}: expected a text of at least {min_chars} characters, got "
                        f"{len(text)}")
    return text


def _line_start_near(text, position):
    """The start of the line nearest to ``position``, strictly inside the text; ``position``
    itself when the text has no line break there. Ties go to the earlier line start."""
    before = text.rfind("\n", 0, position) + 1                    # 0: no line break before
    after = text.find("\n", position) + 1                         # 0: no line break after
    starts = [s for s in (before, after) if 0 < s < len(text)]
    if not starts:
        return position
    return min(starts, key=lambda s: (abs(s - position), s))


def split_text(text, valid=0.05, test=0.05, at_line_boundary=True):
    """(train, valid, test): ``text`` cut in three contiguous non-empty parts, in order.

    Before moving the cuts to line starts, the test part is the last round(test * N)
    characters and the validation part the round(valid * N) before them (N = len(text));
    ``at_line_boundary=False`` keeps those exact cuts. ``train + valid + test == text``.
    """
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise DataError(f"expected valid and test shares in (0, 1) with a sum below 1, got "
                        f"valid={valid}, test={test}")
    n = len(text)
    test_start = n - round(test * n)
    valid_start = test_start - round(valid * n)
    if at_line_boundary:
        valid_start = _line_start_near(text, valid_start)
        test_start = _line_start_near(text, test_start)
    if not 0 < valid_start < test_start < n:
        raise DataError(f"a text of {n} characters is too short to split into train, valid and "
                        f"test parts of shares {1 - valid - test:g}, {valid:g}, {test:g}"
                        f"{' at line boundaries' if at_line_boundary else ''}: the parts would "
                        f"have {valid_start}, {test_start - valid_start}, {n - test_start} "
                        f"characters")
    return text[:valid_start], text[valid_start:test_start], text[test_start:]


def encode_text(text, tokenizer):
    """The ids of ``text`` as one NumPy int64 array (N,): the token stream of a language model."""
    return np.asarray(tokenizer.encode(text), dtype=np.int64)
