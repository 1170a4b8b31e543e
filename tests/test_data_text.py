"""minigrad.data for language models: plain-text files, the built-in corpus, the contiguous
split and the language-model windows (training and evaluation)."""
import hashlib
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad.data.python_docs as python_docs
from minigrad.data import (
    BUILTIN_CORPORA, UNK_ID, DataError, LMBatch, build_tokenizer, builtin_corpus, encode_text,
    lm_batch, lm_eval_batches, load_text, split_text,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repository

# -- strategies ---------------------------------------------------------------------------

LINES = st.lists(st.text(alphabet="ab é\t", max_size=12), min_size=1, max_size=30)
SHARES = st.tuples(st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.3]),
                   st.sampled_from([0.01, 0.05, 0.1, 0.25]))


@st.composite
def texts(draw, min_chars=20):
    """A text of lines over a small alphabet, long enough to split, ending in a newline or not."""
    lines = draw(LINES)
    while sum(len(line) + 1 for line in lines) < min_chars:
        lines.append(draw(st.text(alphabet="xy ", min_size=1, max_size=12)))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


def write(tmp_path, data, name="input.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- load_text ------------------------------------------------------------------------------

@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r"),
                    min_size=1).filter(str.strip))
def test_load_text_gives_back_the_text_it_wrote(tmp_path_factory, text):
    path = write(tmp_path_factory.mktemp("t"), text.encode("utf-8"))
    assert load_text(path, normalize=None) == text


def test_load_text_drops_the_bom_unifies_line_ends_and_normalizes(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfCafe\xcc\x81\r\nLine two\rthree\n")   # e + U+0301
    assert load_text(path) == "Caf\u00e9\nLine two\nthree\n"
    assert load_text(path, normalize=None, lowercase=True) == "cafe\u0301\nline two\nthree\n"


@pytest.mark.parametrize("data, message", [
    (b"", "an empty file"),
    (b" \n\t\n", "only whitespace"),
    (b"line one\nli\xffne two\n", r"input.txt:2: expected UTF-8 text, got the bytes b'\\xffne ' "
                                  r"at byte offset 11 \(line 2, column 3\)"),
    (b"\xef\xbb\xbfab\xc3", r"input.txt:1: .* at byte offset 5 \(line 1, column 6\)"),  # cut off
])
def test_load_text_bad_files_are_clear_errors(tmp_path, data, message):
    with pytest.raises(DataError, match=message):
        load_text(write(tmp_path, data))


def test_load_text_missing_file_directory_short_text_and_bad_option(tmp_path):
    with pytest.raises(DataError, match="no such text file: .*nothing.txt"):
        load_text(tmp_path / "nothing.txt")
    with pytest.raises(DataError, match="expected a text file, got a directory"):
        load_text(tmp_path)
    with pytest.raises(DataError, match="at least 100 characters, got 6"):
        load_text(write(tmp_path, b"short\n"), min_chars=100)
    with pytest.raises(DataError, match="normalize must be one of"):
        load_text(write(tmp_path, b"text"), normalize="NFX")


# -- the built-in corpus --------------------------------------------------------------------

@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the built-in corpus tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name, min_chars", [("python-topics", 300_000), ("python-docs", 900_000)])
def test_builtin_corpus_loads_offline_and_is_large_and_clean(no_network, name, min_chars):
    builtin_corpus.cache_clear()
    text = builtin_corpus(name)
    assert len(text) >= min_chars
    # a real topic, once: pydoc_data's topics "if", "else" and "compound" all hold it
    assert text.count("The \"if\" statement is used for conditional execution") == 1
    lines = text.split("\n")
    assert not [line for line in lines if re.fullmatch(r"\s*[-=*~^+|]{3,}\s*", line)]  # no rules
    assert "\n\n\n" not in text and "``" not in text
    assert not [line for line in lines if line != line.rstrip()]
    assert text.endswith("\n") and not text.startswith("\n")


def test_python_docs_is_the_module_docstrings_then_the_topics():
    topics, docs = builtin_corpus("python-topics"), builtin_corpus("python-docs")
    assert docs.endswith("\n\n" + topics) and len(docs) > 2 * len(topics)
    assert docs.startswith("This is an implementation of decimal floating point arithmetic")


def test_builtin_corpus_is_the_same_text_in_another_process():
    """Same Python, other process (another hash seed): the same text, byte for byte."""
    code = ("import hashlib, minigrad.data as d; "
            "print(hashlib.sha256(d.builtin_corpus('python-docs').encode()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=ROOT)
    here = hashlib.sha256(builtin_corpus("python-docs").encode()).hexdigest()
    assert other.stdout.strip() == here


def test_builtin_corpus_errors_name_the_way_out(monkeypatch, tmp_path):
    with pytest.raises(DataError, match="unknown built-in corpus 'shakespeare'.*python-docs"):
        builtin_corpus("shakespeare")
    builtin_corpus.cache_clear()
    monkeypatch.setattr(python_docs.sysconfig, "get_path", lambda name: str(tmp_path))
    try:
        with pytest.raises(DataError, match="this Python has none in .*use 'python-topics'"):
            builtin_corpus("python-docs")
        assert len(builtin_corpus("python-topics")) >= 300_000      # needs no source files
    finally:
        builtin_corpus.cache_clear()
    assert set(BUILTIN_CORPORA) == {"python-docs", "python-topics"}


# -- the contiguous split -------------------------------------------------------------------

def longest_line(text):
    return max(len(line) + 1 for line in text.split("\n"))


@given(text=texts(), shares=SHARES)
def test_split_covers_the_text_once_in_order_with_exact_shares(text, shares):
    valid, test = shares
    n = len(text)
    if round(valid * n) < 1 or round(test * n) < 1 or n - round(valid * n) - round(test * n) < 1:
        with pytest.raises(DataError, match="too short to split"):
            split_text(text, valid, test, at_line_boundary=False)
        return
    parts = split_text(text, valid, test, at_line_boundary=False)
    assert "".join(parts) == text
    assert [len(p) for p in parts] == [n - round(valid * n) - round(test * n), round(valid * n),
                                       round(test * n)]


@given(text=texts(min_chars=200), shares=SHARES)
def test_split_at_line_boundaries_cuts_at_line_starts_near_the_shares(text, shares):
    valid, test = shares
    try:
        train_part, valid_part, test_part = split_text(text, valid, test)
    except DataError as error:
        assert "too short to split" in str(error)
        return
    assert train_part + valid_part + test_part == text
    assert all(part for part in (train_part, valid_part, test_part))
    n = len(text)
    line_starts = [i + 1 for i, ch in enumerate(text[:-1]) if ch == "\n"]
    for cut, exact in ((len(train_part), n - round(test * n) - round(valid * n)),
                       (len(train_part) + len(valid_part), n - round(test * n))):
        if line_starts:                                           # the nearest line start
            assert cut in line_starts
            assert abs(cut - exact) == min(abs(s - exact) for s in line_starts)
        assert abs(cut - exact) <= longest_line(text)             # near its share


def test_split_of_a_text_without_line_breaks_cuts_at_the_character():
    text = "abcdefghij" * 10
    assert [len(p) for p in split_text(text)] == [90, 5, 5]
    assert split_text(text, valid=0.1, test=0.2) == (text[:70], text[70:80], text[80:])


@pytest.mark.parametrize("valid, test", [(0, 0.1), (0.1, 0), (0.5, 0.5), (-0.1, 0.1), (1.2, 0.1)])
def test_split_bad_shares_are_clear_errors(valid, test):
    with pytest.raises(DataError, match="valid and test shares in"):
        split_text("some text\n" * 100, valid, test)


def test_split_too_short_text_is_a_clear_error():
    with pytest.raises(DataError, match="a text of 3 characters is too short"):
        split_text("abc")
    with pytest.raises(DataError, match="at line boundaries: the parts would have"):
        split_text("one long line " * 20 + "\nand another")     # both cuts at the one line start


@given(text=texts(min_chars=100), kind=st.sampled_from(["char", "word", "bpe"]))
def test_tokenizer_fitted_on_train_only_maps_test_only_symbols_to_unk(text, kind):
    train_part, valid_part, test_part = split_text(text + "\nQZ Q QZ\n", at_line_boundary=False)
    assert "Q" not in train_part and "Q" in test_part
    tokenizer = build_tokenizer(kind, [train_part])
    assert "Q" not in "".join(tokenizer.vocab)                       # learned from train alone
    ids = encode_text(test_part, tokenizer)
    assert ids.dtype == np.int64 and ids.ndim == 1 and UNK_ID in ids


# -- language-model batches -----------------------------------------------------------------

@given(n=st.integers(2, 300), batch_size=st.integers(1, 9), block_size=st.integers(1, 40),
       seed=st.integers(0, 2**32), step=st.integers(0, 10**6))
def test_lm_batch_windows_lie_in_the_stream_and_y_is_x_shifted(n, batch_size, block_size, seed,
                                                                step):
    ids = np.arange(n) + 1000                    # an id tells its position
    if n < block_size + 1:
        with pytest.raises(DataError, match="does not fit in the"):
            lm_batch(ids, batch_size, block_size, seed, step)
        return
    batch = lm_batch(ids, batch_size, block_size, seed, step)
    assert isinstance(batch, LMBatch) and batch.num_tokens == batch_size * block_size
    assert batch.x.shape == batch.y.shape == (batch_size, block_size)
    assert batch.x.dtype == batch.y.dtype == np.int64
    starts = batch.x[:, :1] - 1000
    assert (batch.x == ids[starts + np.arange(block_size)]).all()              # contiguous windows
    assert (batch.y == batch.x + 1).all()                                      # the next token
    assert starts.min() >= 0 and batch.y.max() <= ids[-1]                      # inside the split


def test_lm_batch_depends_on_seed_and_step_only():
    ids = np.random.default_rng(0).integers(0, 50, size=5000)
    first = lm_batch(ids, 8, 16, seed=3, step=7)
    for step in range(7):                        # an uninterrupted run draws steps 0..6 first
        lm_batch(ids, 8, 16, seed=3, step=step)
    again = lm_batch(ids, 8, 16, seed=3, step=7)
    assert (first.x == again.x).all() and (first.y == again.y).all()
    assert not (lm_batch(ids, 8, 16, seed=3, step=8).x == first.x).all()
    assert not (lm_batch(ids, 8, 16, seed=4, step=7).x == first.x).all()


def test_lm_batch_draws_every_window_alike_the_last_one_included():
    n, block_size, draws = 10, 3, 4000             # 7 windows of 4 ids fit: starts 0..6
    starts = np.concatenate([lm_batch(np.arange(n), 8, block_size, 0, step).x[:, 0]
                             for step in range(draws // 8)])
    counts = np.bincount(starts, minlength=n)
    p, total = 1 / 7, len(starts)
    assert counts[7:].sum() == 0                                        # no window past the end
    assert (np.abs(counts[:7] - p * total) <= 4 * np.sqrt(total * p * (1 - p))).all()


@given(n=st.integers(2, 200), batch_size=st.integers(1, 6), block_size=st.integers(1, 30))
def test_lm_eval_batches_predict_every_target_once_in_order(n, batch_size, block_size):
    ids = np.random.default_rng(n).integers(0, 1000, size=n)
    batches = list(lm_eval_batches(ids, batch_size, block_size))
    assert np.concatenate([b.x.ravel() for b in batches]).tolist() == ids[:-1].tolist()
    assert np.concatenate([b.y.ravel() for b in batches]).tolist() == ids[1:].tolist()
    assert sum(b.num_tokens for b in batches) == n - 1
    full, rest = divmod(n - 1, block_size)
    shapes = [b.x.shape for b in batches]
    if rest:                                         # the partial window: last, one row of rest
        assert shapes.pop() == (1, rest)
    assert all(T == block_size and 1 <= rows <= batch_size for rows, T in shapes)
    assert all(rows == batch_size for rows, _ in shapes[:-1])
    assert sum(rows for rows, _ in shapes) == full


@pytest.mark.parametrize("call, message", [
    (lambda: lm_batch(np.arange(10), 2, 0, 0, 0), "block_size must be an integer >= 1, got 0"),
    (lambda: lm_batch(np.arange(10), 0, 2, 0, 0), "batch_size must be an integer >= 1, got 0"),
    (lambda: lm_batch(np.arange(10), 2, 2, -1, 0), "seed must be an integer >= 0"),
    (lambda: lm_batch(np.zeros((2, 5), dtype=int), 2, 2, 0, 0), r"1-D array .* shape \(2, 5\)"),
    (lambda: lm_batch(np.linspace(0, 1, 10), 2, 2, 0, 0), "integer token ids.*float64"),
    (lambda: lm_batch(np.arange(8), 2, 8, 0, 0), r"block_size \+ 1 = 9 tokens does not fit in"),
    (lambda: list(lm_eval_batches(np.arange(1), 2, 2)), "at least 2 tokens"),
])
def test_lm_bad_arguments_are_clear_errors(call, message):
    with pytest.raises(DataError, match=message):
        call()
