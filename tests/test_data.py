"""minigrad.data: tokenizer round trips, BPE against the paper, the date task against an
independent parser, the corpus loader on a tricky file, the split, and batching."""
import datetime
import json
import random
import re
import time
import unicodedata
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrad.data import (
    BOS_ID, EOS_ID, PAD_ID, SPECIALS, TASKS, UNK, UNK_ID, BPETokenizer, CharTokenizer,
    DataError, WordTokenizer, batches, build_tokenizer, encode_pairs, load_tsv, make_batch,
    make_task, split_pairs, tokenizer_from_dict,
)
from minigrad.data.tasks import DATE_FORMATS, date_styles, render_date, task_capacity

KINDS = ["char", "word", "bpe"]

# -- strategies ---------------------------------------------------------------------------

WORDS = st.text(alphabet="abcdeé", min_size=1, max_size=7)
GAPS = st.sampled_from([" ", "  ", "\t", "\n", " \u3000 "])      # \u3000: ideographic space


@st.composite
def spaced_texts(draw):
    """A text of words over a small alphabet, with messy whitespace around and between."""
    words = draw(st.lists(WORDS, min_size=1, max_size=6))
    gaps = draw(st.lists(GAPS, min_size=len(words) + 1, max_size=len(words) + 1))
    return gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:]))


TEXT_SETS = st.lists(spaced_texts(), min_size=1, max_size=8)


def normalized(text):
    """What word and BPE tokenizers promise to give back: words joined by single spaces."""
    return " ".join(text.split())


def fit(kind, texts):
    options = {"bpe": dict(num_merges=30, min_freq=1)}.get(kind, {})
    return build_tokenizer(kind, texts, **options)


# -- tokenizers: round trips --------------------------------------------------------------

@settings(deadline=None)
@given(texts=st.lists(st.text(max_size=20), min_size=1, max_size=6), data=st.data())
def test_char_round_trip_of_any_unicode_seen_in_fit(texts, data):
    tok = CharTokenizer.fit(texts)
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    seen = sorted(set("".join(texts)))
    if seen:
        new = "".join(data.draw(st.lists(st.sampled_from(seen), max_size=20)))
        assert tok.decode(tok.encode(new)) == new


@settings(deadline=None)
@given(texts=st.lists(st.text(max_size=20), min_size=1, max_size=6), data=st.data())
def test_char_unseen_characters_become_unk(texts, data):
    tok = CharTokenizer.fit(texts)
    seen = set("".join(texts))
    unseen = data.draw(st.characters(blacklist_categories=["Cs"]).filter(lambda c: c not in seen))
    text = "".join(texts) + unseen
    ids = tok.encode(text)
    assert ids[-1] == UNK_ID and UNK_ID not in ids[:-1]
    assert tok.decode(ids) == "".join(texts) + UNK


@settings(deadline=None)
@given(texts=TEXT_SETS, data=st.data())
def test_word_round_trip_normalizes_whitespace(texts, data):
    tok = WordTokenizer.fit(texts)
    for text in texts:
        assert tok.decode(tok.encode(text)) == normalized(text)
    seen = sorted({w for t in texts for w in t.split()})
    new = data.draw(st.lists(st.sampled_from(seen), min_size=1, max_size=8))
    assert tok.decode(tok.encode("  ".join(new))) == " ".join(new)
    assert tok.encode("zzz " + new[0]) == [UNK_ID, tok.encode(new[0])[0]]   # "z" not in WORDS


@settings(deadline=None)
@given(texts=TEXT_SETS, num_merges=st.integers(0, 60), min_freq=st.integers(1, 3), data=st.data())
def test_bpe_round_trip_with_any_number_of_merges(texts, num_merges, min_freq, data):
    tok = BPETokenizer.fit(texts, num_merges=num_merges, min_freq=min_freq)
    for text in texts:
        assert tok.decode(tok.encode(text)) == normalized(text)
    seen = sorted({ch for text in texts for ch in "".join(text.split())})
    new_words = data.draw(st.lists(st.text(alphabet=seen, min_size=1, max_size=8), min_size=1, max_size=5))
    assert tok.decode(tok.encode(" ".join(new_words))) == " ".join(new_words)


@settings(deadline=None)
@given(texts=TEXT_SETS, num_merges=st.integers(0, 40))
def test_bpe_unseen_character_is_unk_inside_its_word(texts, num_merges):
    tok = BPETokenizer.fit(texts, num_merges=num_merges, min_freq=1)
    word = texts[0].split()[0]
    ids = tok.encode(word + "z" + word)                              # "z" is never in WORDS
    assert ids.count(UNK_ID) == 1
    assert tok.decode(ids) == word + UNK + word


@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(texts=TEXT_SETS)
def test_to_dict_survives_json_and_gives_the_same_tokenizer(kind, texts):
    tok = fit(kind, texts)
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert type(again) is type(tok) and again == tok and again.vocab == tok.vocab
    probe = texts + ["zz " + " ".join(texts)]
    assert [again.encode(t) for t in probe] == [tok.encode(t) for t in probe]


@pytest.mark.parametrize("kind", KINDS)
def test_vocab_starts_with_the_specials_and_has_no_repeats(kind):
    tok = fit(kind, ["the cat sat", "on the mat", "<unk> <pad> is text here"])
    assert tok.vocab[:4] == SPECIALS and [PAD_ID, BOS_ID, EOS_ID, UNK_ID] == [0, 1, 2, 3]
    assert len(set(tok.vocab)) == len(tok.vocab) == tok.vocab_size


@pytest.mark.parametrize("kind", KINDS)
def test_encode_never_gives_control_tokens(kind):
    tok = fit(kind, ["a <pad> b <bos> c <eos>"])
    ids = tok.encode("a <pad> b <bos> c <eos>")
    assert not {PAD_ID, BOS_ID, EOS_ID} & set(ids)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_stops_at_eos_and_skips_pad_and_bos(kind):
    tok = fit(kind, ["one two three", "four five"])
    ids = tok.encode("one two three")
    assert tok.decode([BOS_ID, *ids, EOS_ID, *tok.encode("four"), PAD_ID]) == tok.decode(ids)
    assert tok.decode([BOS_ID, *ids[:1], PAD_ID, *ids[1:], PAD_ID]) == tok.decode(ids)
    assert tok.decode(np.array([BOS_ID, *ids], dtype=np.int64)) == tok.decode(ids)


@pytest.mark.parametrize("kind", KINDS)
def test_pieces_are_the_vocabulary_entries_specials_included(kind):
    tok = fit(kind, ["one two three"])
    ids = [BOS_ID, *tok.encode("one two"), EOS_ID, PAD_ID]
    assert tok.pieces(ids) == [tok.vocab[i] for i in ids]
    assert tok.pieces(ids)[0] == "<bos>" and tok.pieces(ids)[-2:] == ["<eos>", "<pad>"]


@pytest.mark.parametrize("kind", KINDS)
def test_fit_is_independent_of_text_order(kind):
    texts = make_task("dates", 300, seed=5)
    sources = [s for s, _ in texts]
    shuffled = sources[:]
    random.Random(0).shuffle(shuffled)
    assert fit(kind, sources) == fit(kind, shuffled) == fit(kind, sources)


def test_char_vocab_is_ordered_by_frequency_then_character():
    tok = CharTokenizer.fit(["abracadabra"])
    counts = Counter("abracadabra")
    assert tok.vocab[4:] == sorted(counts, key=lambda c: (-counts[c], c))     # a b r c d


def test_char_min_freq_drops_rare_characters():
    tok = CharTokenizer.fit(["aab"], min_freq=2)
    assert tok.vocab == SPECIALS + ["a"] and tok.encode("ab") == [4, UNK_ID]


@pytest.mark.parametrize("min_freq, max_size", [(1, None), (2, None), (1, 2), (2, 1)])
def test_word_vocab_keeps_the_most_frequent_words(min_freq, max_size):
    texts = ["the cat", "the dog", "the cat sat", "a bird"]
    counts = Counter(w for t in texts for w in t.split())
    kept = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if counts[w] >= min_freq]
    tok = WordTokenizer.fit(texts, min_freq=min_freq, max_size=max_size)
    assert tok.vocab[4:] == kept[:max_size]
    assert all(tok.encode(w) == [UNK_ID] for w in counts if w not in tok.vocab)


@pytest.mark.parametrize("bad, message", [
    ({"kind": "spam", "vocab": SPECIALS}, "kind 'spam'"),
    ({"vocab": SPECIALS}, "kind None"),
    ({"kind": "char", "vocab": ["a", *SPECIALS]}, "must start with"),
    ({"kind": "word", "vocab": [*SPECIALS, "a", "a"]}, "must not repeat"),
    ({"kind": "bpe", "vocab": SPECIALS}, "needs the fields"),
    ({"kind": "bpe", "vocab": [*SPECIALS, "a"], "merges": [["a", "a"]]}, "two vocabulary symbols"),
])
def test_a_corrupt_tokenizer_description_is_a_clear_error(bad, message):
    with pytest.raises(DataError, match=message):
        tokenizer_from_dict(bad)


def test_unknown_tokenizer_kind_lists_the_kinds():
    with pytest.raises(DataError, match="'sentencepiece'.*char, word, bpe"):
        build_tokenizer("sentencepiece", ["a"])


@pytest.mark.parametrize("kind", KINDS)
def test_decode_of_an_id_outside_the_vocabulary_is_a_clear_error(kind):
    tok = fit(kind, ["ab"])
    with pytest.raises(DataError, match=f"token id {tok.vocab_size} is outside"):
        tok.decode([tok.vocab_size])
    with pytest.raises(DataError, match="token id -1"):
        tok.pieces([-1])


# -- BPE against the paper ----------------------------------------------------------------
# The paper's own listing (Sennrich et al. 2016, Algorithm 1): recount all pairs at every
# step, merge the best everywhere. Ties go to the smallest pair, as in the tokenizer.

PAPER_CORPUS = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3


def paper_stats(vocab):
    pairs = Counter()
    for word, freq in vocab.items():
        symbols = word.split()
        for i in range(len(symbols) - 1):
            pairs[symbols[i], symbols[i + 1]] += freq
    return pairs


def paper_merge(pair, vocab):
    pattern = re.compile(r"(?<!\S)" + re.escape(" ".join(pair)) + r"(?!\S)")
    return {pattern.sub("".join(pair), word): freq for word, freq in vocab.items()}


def paper_learn(texts, num_merges, min_freq):
    """The merges of the paper's listing, and each step's pair counts (for the test's eyes)."""
    vocab = Counter(" ".join(word) + " </w>" for t in texts for word in t.split())
    merges, steps = [], []
    for _ in range(num_merges):
        pairs = paper_stats(vocab)
        if not pairs or max(pairs.values()) < min_freq:
            break
        best = min(p for p, c in pairs.items() if c == max(pairs.values()))
        merges.append(best)
        steps.append(pairs)
        vocab = paper_merge(best, vocab)
    return merges, steps


def apply_in_order(word, merges):
    """Encode one word by running through every merge in order (slow and obviously right)."""
    symbols = list(word) + ["</w>"]
    for a, b in merges:
        out, i = [], 0
        while i < len(symbols):
            if symbols[i:i + 2] == [a, b]:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


def test_bpe_first_merges_on_the_papers_corpus_are_the_most_frequent_pairs():
    tok = BPETokenizer.fit(PAPER_CORPUS, num_merges=10, min_freq=1)
    merges, steps = paper_learn(PAPER_CORPUS, num_merges=10, min_freq=1)
    assert tok.merges == merges
    for merge, pairs in zip(tok.merges, steps):
        assert pairs[merge] == max(pairs.values())
    # The paper's Figure 1 (its "r ·" is our "</w>"): es (6 newest + 3 widest = 9, ties
    # with s t and wins in order), then es t (9), then est </w> (9).
    assert tok.merges[:3] == [("e", "s"), ("es", "t"), ("est", "</w>")]
    assert [steps[k][m] for k, m in enumerate(tok.merges[:3])] == [9, 9, 9]


def test_bpe_encodes_the_papers_words_as_learning_left_them():
    tok = BPETokenizer.fit(PAPER_CORPUS, num_merges=10, min_freq=1)
    for word in set(PAPER_CORPUS) | {"lowest", "newer", "wider"}:
        assert tok.pieces(tok.encode(word)) == apply_in_order(word, tok.merges)
    assert tok.pieces(tok.encode("lowest")) == ["low", "est</w>"]   # the paper's example


@settings(deadline=None)
@given(texts=TEXT_SETS, num_merges=st.integers(0, 40), min_freq=st.integers(1, 3))
def test_bpe_incremental_learning_equals_the_papers_full_recount(texts, num_merges, min_freq):
    tok = BPETokenizer.fit(texts, num_merges=num_merges, min_freq=min_freq)
    assert tok.merges == paper_learn(texts, num_merges, min_freq)[0]


@settings(deadline=None)
@given(texts=TEXT_SETS, num_merges=st.integers(0, 40), data=st.data())
def test_bpe_applies_merges_in_learned_order(texts, num_merges, data):
    tok = BPETokenizer.fit(texts, num_merges=num_merges, min_freq=1)
    words = data.draw(st.lists(WORDS, min_size=1, max_size=5)) + texts[0].split()
    for word in words:
        expected = apply_in_order(word, tok.merges)
        assert tok.pieces(tok.encode(word)) == [s if s in tok.vocab else UNK for s in expected]


def test_bpe_min_freq_and_vocab_size_stop_learning():
    pairs_of_the_paper = paper_learn(PAPER_CORPUS, 100, min_freq=1)[1]
    tok = BPETokenizer.fit(PAPER_CORPUS, num_merges=100, min_freq=4)
    assert all(pairs_of_the_paper[k][m] >= 4 for k, m in enumerate(tok.merges))
    next_best = paper_learn(PAPER_CORPUS, len(tok.merges) + 1, min_freq=1)[1][-1]
    assert max(next_best.values()) < 4                               # it stopped for a reason
    base = BPETokenizer.fit(PAPER_CORPUS, num_merges=0).vocab_size   # specials, </w>, letters
    capped = BPETokenizer.fit(PAPER_CORPUS, num_merges=100, min_freq=1, vocab_size=base + 5)
    assert capped.vocab_size == base + 5


def test_bpe_learns_fewer_pieces_than_characters_on_the_date_task():
    texts = [s for s, _ in make_task("dates", 500, seed=1)]
    tok = BPETokenizer.fit(texts, num_merges=200)
    chars = sum(len(t.replace(" ", "")) + len(t.split()) for t in texts)   # letters + </w>
    assert sum(len(tok.encode(t)) for t in texts) < chars / 2


# -- built-in tasks -----------------------------------------------------------------------
# An independent reader of each date format: time.strptime (case-insensitive, English names
# in the C locale) after the ordinal suffix, checked against a table, becomes a "~".

STRPTIME = {
    "weekday_day_month_year": "%A %d %B %Y",
    "us_month_day_yy": "%m/%d/%y",
    "mon_day_ordinal_year": "%b %d~, %Y",
    "european_dots": "%d.%m.%Y",
    "the_ordinal_of_month_year": "the %d~ of %B, %Y",
    "year_mon_day": "%Y %b %d",
    "month_day_year": "%B %d, %Y",
    "day_mon_year": "%d %b %Y",
    "wkd_mon_day_year": "%a, %b %d %Y",
    "european_slashes": "%d/%m/%Y",
    "compact": "%Y%m%d",
    "year_slashes": "%Y/%m/%d",
    "day_mon_yy_dashes": "%d-%b-%y",
    "month_the_ordinal_year": "%B the %d~, %Y",
    "european_dots_yy": "%d.%m.%y",
    "weekday_month_day_year": "%A, %B %d, %Y",
    "ordinal_month_year": "%d~ %B %Y",
    "mon_day_apostrophe_yy": "%b %d '%y",
}
ORDINALS = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}   # else "th"


def read_date(text, pattern):
    """The date ``text`` denotes under ``pattern``, or None if it does not fit; a weekday
    or ordinal that disagrees with the date is an AssertionError."""
    ordinal = re.search(r"(\d+)(st|nd|rd|th)\b", text, re.IGNORECASE)
    if ordinal:
        assert ordinal.group(2).lower() == ORDINALS.get(int(ordinal.group(1)), "th"), text
        text = text[:ordinal.end(1)] + "~" + text[ordinal.end():]
    try:
        parsed = time.strptime(text, pattern)
    except ValueError:
        return None
    year = parsed.tm_year
    if "%y" in pattern:                    # strptime's pivot is 1969; the task's is 1950
        year = 1900 + year % 100 if year % 100 >= 50 else 2000 + year % 100
    date = datetime.date(year, parsed.tm_mon, parsed.tm_mday)
    if "%a" in pattern or "%A" in pattern:
        assert parsed.tm_wday == date.weekday(), f"wrong weekday in {text!r}"
    return date


def readings(text):
    """{format name: date} for every format whose reader accepts ``text``."""
    found = {name: read_date(text, pattern) for name, pattern in STRPTIME.items()}
    return {name: date for name, date in found.items() if date is not None}


def test_every_date_format_has_an_independent_reader():
    assert set(STRPTIME) == set(DATE_FORMATS) and len(DATE_FORMATS) >= 15


DATES_2000 = make_task("dates", 2000, seed=0)


def test_date_targets_are_iso_dates_in_range_and_denoted_by_their_source():
    for source, target in DATES_2000:
        date = datetime.date.fromisoformat(target)
        assert datetime.date(1950, 1, 1) <= date <= datetime.date(2049, 12, 31)
        assert set(readings(source).values()) == {date}, source     # one meaning, the right one


def test_at_least_15_date_formats_and_all_three_cases_appear_in_2000_pairs():
    formats = Counter(name for source, _ in DATES_2000 for name in readings(source))
    assert len(formats) >= 15
    lettered = [s for s, _ in DATES_2000 if any(c.isalpha() for c in s)]
    assert any(s == s.lower() for s in lettered) and any(s == s.upper() for s in lettered)
    assert any(s not in (s.lower(), s.upper()) for s in lettered)


def test_dates_are_spread_over_the_whole_century():
    years = [int(t[:4]) for _, t in DATES_2000]
    assert min(years) < 1953 and max(years) > 2046
    assert 0.45 < np.mean([y < 2000 for y in years]) < 0.55            # uniform: 1/2 +- 5 sd


@pytest.mark.parametrize("date", [datetime.date(1950, 1, 1), datetime.date(2049, 12, 31),
                                  datetime.date(2000, 2, 29), datetime.date(1969, 7, 20),
                                  datetime.date(2026, 11, 21), datetime.date(2011, 5, 3)])
@pytest.mark.parametrize("name", list(DATE_FORMATS))
def test_each_format_in_each_case_reads_back_as_its_date(name, date):
    for style in date_styles(name):
        found = readings(render_date(date, name, style))
        assert found.get(name) == date and set(found.values()) == {date}


def test_no_two_formats_or_cases_write_a_date_the_same_way():
    days = [datetime.date(2026, 5, d) for d in range(1, 32)] + \
           [datetime.date(1950, 1, 1) + datetime.timedelta(days=k) for k in range(0, 36525, 997)]
    per_day = sum(len(date_styles(name)) for name in DATE_FORMATS)
    texts = [render_date(day, name, style) for day in days
             for name in DATE_FORMATS for style in date_styles(name)]
    assert len(set(texts)) == len(days) * per_day
    century = (datetime.date(2050, 1, 1) - datetime.date(1950, 1, 1)).days
    assert task_capacity("dates") == century * per_day


def test_the_examples_of_the_issue_are_formats_of_the_task():
    day = datetime.date(2026, 11, 21)
    every = {render_date(day, n, s) for n in DATE_FORMATS for s in date_styles(n)}
    assert {"saturday 21 november 2026", "11/21/26", "Nov 21st, 2026", "21.11.2026",
            "the 21st of november, 2026", "2026 nov 21", "November 21, 2026", "21 NOV 2026",
            "Sat, Nov 21 2026", "21/11/2026"} <= every


TASK_CHECKS = {
    "dates": lambda s, t: readings(s) and set(readings(s).values()) == {datetime.date.fromisoformat(t)},
    "reverse": lambda s, t: re.fullmatch("[a-z]{3,10}", s) and t == s[::-1],
    "sort": lambda s, t: re.fullmatch("[0-9]{3,10}", s) and t == "".join(sorted(s)),
    "copy": lambda s, t: re.fullmatch("[a-z]{3,10}", s) and t == s,
}


def test_every_task_has_a_check_and_a_description():
    assert set(TASK_CHECKS) == set(TASKS) and all(TASKS.values())


@pytest.mark.parametrize("name", list(TASKS))
def test_task_pairs_are_right_unique_and_seeded(name):
    pairs = make_task(name, 300, seed=7)
    assert len(pairs) == 300 == len(set(pairs))
    assert all(TASK_CHECKS[name](s, t) for s, t in pairs)
    assert make_task(name, 300, seed=7) == pairs
    assert make_task(name, 300, seed=8) != pairs
    assert make_task(name, 100, seed=7) == pairs[:100]                # a prefix: same stream


@pytest.mark.parametrize("name", list(TASKS))
def test_zero_pairs(name):
    assert make_task(name, 0) == []


def test_task_errors_name_what_was_expected():
    with pytest.raises(DataError, match="unknown task 'spam'.*dates, reverse, sort, copy"):
        make_task("spam", 10)
    with pytest.raises(DataError, match=">= 0, got -1"):
        make_task("dates", -1)
    capacity = task_capacity("dates")
    with pytest.raises(DataError, match=f"at most {capacity} distinct pairs, asked for {capacity + 1}"):
        make_task("dates", capacity + 1)


# -- corpus loader ------------------------------------------------------------------------

TRICKY = (b"\xef\xbb\xbf"                                            # a byte-order mark
          + "Hello, world!\tBonjour, le monde !\tCC-BY 2.0 (France) Attribution: #1\r\n".encode()
          + b"\r\n   \n"                                             # blank lines
          + "Cafe\u0301  \tcafe\u0301 au lait  \r\n".encode()         # NFD input, spaces
          + "Go.\tVa !\n\n".encode()
          + "I'm  OK.\t\u00c7a va.   ".encode())                     # no final newline


@pytest.fixture
def tricky(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(TRICKY)
    return path


def write(tmp_path, text, name="data.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_tsv_reads_the_tricky_file(tricky):
    assert load_tsv(tricky) == [("Hello, world!", "Bonjour, le monde !"),
                                ("Caf\u00e9", "caf\u00e9 au lait"),
                                ("Go.", "Va !"), ("I'm OK.", "\u00c7a va.")]


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_load_tsv_normalizes_unicode(tricky, form):
    pairs = load_tsv(tricky, normalize=form)
    assert all(unicodedata.is_normalized(form, s) and unicodedata.is_normalized(form, t) for s, t in pairs)
    assert pairs[1][0] == unicodedata.normalize(form, "Cafe\u0301")


def test_load_tsv_without_normalization_keeps_the_text(tricky):
    assert load_tsv(tricky, normalize=None)[1] == ("Cafe\u0301", "cafe\u0301 au lait")


def test_load_tsv_nfkc_folds_compatibility_forms(tmp_path):
    assert load_tsv(write(tmp_path, "\ufb01ne\tok\n"), normalize="NFKC") == [("fine", "ok")]


def test_load_tsv_lowercases(tricky):
    assert load_tsv(tricky, lowercase=True)[0] == ("hello, world!", "bonjour, le monde !")
    assert load_tsv(tricky, lowercase=True)[3] == ("i'm ok.", "\u00e7a va.")


def test_load_tsv_splits_punctuation(tricky):
    pairs = load_tsv(tricky, split_punctuation=True)
    assert pairs[0] == ("Hello , world !", "Bonjour , le monde !")
    assert pairs[3] == ("I ' m OK .", "\u00c7a va .")


def test_load_tsv_splits_every_unicode_punctuation_category(tmp_path):
    pairs = load_tsv(write(tmp_path, "\u00bfQu\u00e9?\t\u00abOui\u00bb\u2014non\n"), split_punctuation=True)
    assert pairs == [("\u00bf Qu\u00e9 ?", "\u00ab Oui \u00bb \u2014 non")]


def test_load_tsv_malformed_line_names_path_and_line(tmp_path):
    path = write(tmp_path, "a\tb\n\nno tab on this line\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3") + ".*no tab.*'no tab on this line'"):
        load_tsv(path)


def test_load_tsv_shows_a_long_bad_line_truncated(tmp_path):
    with pytest.raises(DataError) as error:
        load_tsv(write(tmp_path, "x" * 5000 + "\n"))
    assert ":1:" in str(error.value) and "..." in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize("line, side", [("\tb", "source"), ("a\t  \tattribution", "target")])
def test_load_tsv_empty_side_names_path_and_line(tmp_path, line, side):
    path = write(tmp_path, f"a\tb\n{line}\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2") + f": the {side} is empty"):
        load_tsv(path)


def test_load_tsv_bad_utf8_names_path_and_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("a\tb\ncaf\u00e9\tcoffee\n".encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(f"{path}:2") + ": expected UTF-8"):
        load_tsv(path)


def test_load_tsv_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such data file: .*nothing.tsv"):
        load_tsv(tmp_path / "nothing.tsv")


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff"])
def test_load_tsv_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=f"no pairs in {re.escape(str(path))}$"):
        load_tsv(path)


LENGTHS = "a\tb\na b\tc\na b c\td e\na b c\td e f\na b c d\te\na\tb c d e f\n"


@pytest.mark.parametrize("min_length, max_length", [(1, None), (2, None), (1, 3), (2, 4), (3, 3)])
def test_load_tsv_length_filters_count_words_on_both_sides(tmp_path, min_length, max_length):
    pairs = load_tsv(write(tmp_path, LENGTHS), min_length=min_length, max_length=max_length)
    every = [tuple(line.split("\t")) for line in LENGTHS.splitlines()]
    inside = [p for p in every if all(min_length <= len(side.split()) <= (max_length or 99) for side in p)]
    assert pairs == inside and len(pairs) >= 1


def test_load_tsv_says_when_the_length_filter_dropped_everything(tmp_path):
    with pytest.raises(DataError, match=r"no pairs in .*6 pairs outside the length range \[7, None\]"):
        load_tsv(write(tmp_path, LENGTHS), min_length=7)


@pytest.mark.parametrize("max_pairs", [1, 2, 4, 100])
def test_load_tsv_max_pairs_keeps_the_first(tricky, max_pairs):
    assert load_tsv(tricky, max_pairs=max_pairs) == load_tsv(tricky)[:max_pairs]


@pytest.mark.parametrize("options, message", [
    (dict(normalize="NFX"), "normalize must be one of"),
    (dict(min_length=3, max_length=2), "min_length <= max_length"),
    (dict(max_pairs=0), "max_pairs must be None or >= 1"),
])
def test_load_tsv_bad_options(tricky, options, message):
    with pytest.raises(DataError, match=message):
        load_tsv(tricky, **options)


# -- split --------------------------------------------------------------------------------

@settings(deadline=None)
@given(n=st.integers(3, 300), valid=st.sampled_from([0.01, 0.1, 0.25, 0.45]),
       test=st.sampled_from([0.01, 0.1, 0.3, 0.5]), seed=st.integers(0, 3))
def test_split_sizes_disjoint_covering_and_seeded(n, valid, test, seed):
    pairs = [(f"s{i}", f"t{i}") for i in range(n)]
    train, dev, held = split_pairs(pairs, valid=valid, test=test, seed=seed)
    assert min(len(train), len(dev), len(held)) >= 1
    assert sorted(train + dev + held) == sorted(pairs)                # disjoint and covering
    if n * min(valid, test) >= 1 and n * (1 - valid - test) >= 2:     # no rounding clamp needed
        assert (len(dev), len(held)) == (round(valid * n), round(test * n))
    assert split_pairs(pairs, valid=valid, test=test, seed=seed) == (train, dev, held)


def test_split_differs_with_the_seed_and_shuffles():
    pairs = [(str(i), str(i)) for i in range(100)]
    assert split_pairs(pairs, seed=0) != split_pairs(pairs, seed=1)
    assert split_pairs(pairs, seed=0)[0] != pairs[:80]


@pytest.mark.parametrize("n, valid, test, message", [
    (2, 0.1, 0.1, "at least 3 pairs, got 2"),
    (10, 0.0, 0.1, "fractions in"),
    (10, 0.6, 0.4, "sum below 1"),
])
def test_split_errors(n, valid, test, message):
    with pytest.raises(DataError, match=message):
        split_pairs([("a", "b")] * n, valid=valid, test=test)


# -- batching -----------------------------------------------------------------------------

IDS = st.lists(st.integers(4, 30), max_size=9)
ENCODED = st.lists(st.tuples(st.lists(st.integers(4, 30), min_size=1, max_size=9), IDS),
                   min_size=1, max_size=12)


@settings(deadline=None)
@given(encoded=ENCODED)
def test_make_batch_pads_shifts_and_masks(encoded):
    batch = make_batch(encoded)
    B, S, T = len(encoded), max(len(s) for s, _ in encoded), max(len(t) for _, t in encoded) + 1
    assert batch.src.shape == (B, S) and batch.tgt_in.shape == batch.tgt_out.shape == (B, T)
    assert batch.src_lengths.shape == batch.tgt_lengths.shape == (B,)
    for a in (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, batch.tgt_lengths):
        assert a.dtype == np.int64
    for b, (source, target) in enumerate(encoded):
        n = len(target) + 1
        assert batch.src_lengths[b] == len(source) and batch.tgt_lengths[b] == n
        assert list(batch.src[b]) == source + [PAD_ID] * (S - len(source))
        assert list(batch.tgt_in[b]) == [BOS_ID] + target + [PAD_ID] * (T - n)
        assert list(batch.tgt_out[b]) == target + [EOS_ID] + [PAD_ID] * (T - n)
    np.testing.assert_array_equal(batch.src_mask, batch.src == PAD_ID)   # content ids are >= 4
    np.testing.assert_array_equal(batch.tgt_mask, batch.tgt_out == PAD_ID)
    assert batch.src_mask.dtype == batch.tgt_mask.dtype == np.bool_
    assert batch.num_tokens == sum(len(t) + 1 for _, t in encoded)


def test_make_batch_worked_example():
    batch = make_batch([([5, 6, 7], [8]), ([5], [9, 10, 11])])
    np.testing.assert_array_equal(batch.src, [[5, 6, 7], [5, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(batch.tgt_in, [[BOS_ID, 8, PAD_ID, PAD_ID], [BOS_ID, 9, 10, 11]])
    np.testing.assert_array_equal(batch.tgt_out, [[8, EOS_ID, PAD_ID, PAD_ID], [9, 10, 11, EOS_ID]])
    np.testing.assert_array_equal(batch.tgt_lengths, [2, 4])
    np.testing.assert_array_equal(batch.tgt_mask, [[False, False, True, True], [False] * 4])


def test_an_empty_target_is_just_eos():
    batch = make_batch([([5], [])])
    assert batch.tgt_in.tolist() == [[BOS_ID]] and batch.tgt_out.tolist() == [[EOS_ID]]


def test_a_source_without_tokens_is_a_clear_error():
    words = WordTokenizer.fit(["a b"])
    with pytest.raises(DataError, match="pair 1: expected a source of at least one token"):
        encode_pairs([("a", "b"), ("   ", "b")], words, words)
    with pytest.raises(DataError, match="pair 1 has none"):
        make_batch([([5], [6]), ([], [6])])
    with pytest.raises(DataError, match="at least one pair"):
        make_batch([])


def test_encode_pairs_uses_each_sides_tokenizer():
    pairs = make_task("dates", 20, seed=3)
    src, tgt = CharTokenizer.fit([s for s, _ in pairs]), CharTokenizer.fit([t for _, t in pairs])
    encoded = encode_pairs(pairs, src, tgt)
    assert [(src.decode(s), tgt.decode(t)) for s, t in encoded] == pairs


def numbered(n, seed=0):
    """n encoded pairs whose first source id (4 + i) names the pair; random lengths."""
    rng = np.random.default_rng(seed)
    return [([4 + i] + [5] * int(rng.integers(0, 40)), [6] * int(rng.integers(0, 30))) for i in range(n)]


def rows(batch_list):
    return [int(b.src[r, 0]) - 4 for b in batch_list for r in range(b.src.shape[0])]


@pytest.mark.parametrize("n, batch_size", [(1, 4), (7, 3), (100, 8), (333, 16), (2000, 32)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_pair_exactly_once(n, batch_size, shuffle):
    encoded = numbered(n)
    out = batches(encoded, batch_size, shuffle=shuffle, seed=1)
    assert sorted(rows(out)) == list(range(n))
    assert all(1 <= b.src.shape[0] <= batch_size for b in out)
    assert len(out) == -(-n // batch_size)
    for b in out:                                                     # each row is its pair
        for r in range(b.src.shape[0]):
            source, target = encoded[int(b.src[r, 0]) - 4]
            assert b.src_lengths[r] == len(source) and b.tgt_lengths[r] == len(target) + 1


def test_batches_without_shuffle_keep_the_input_order():
    out = batches(numbered(50), 8, shuffle=False)
    assert rows(out) == list(range(50)) and [b.src.shape[0] for b in out] == [8] * 6 + [2]


def test_batches_group_similar_lengths():
    encoded, batch_size = numbered(3200), 32
    bucketed = batches(encoded, batch_size, seed=0)
    order = np.random.default_rng(0).permutation(len(encoded))
    random_batches = [make_batch([encoded[i] for i in order[k:k + batch_size]])
                      for k in range(0, len(encoded), batch_size)]

    def spread(batch_list):        # mean over batches of (longest - shortest source)
        return np.mean([b.src_lengths.max() - b.src_lengths.min() for b in batch_list])

    def padding(batch_list):       # fraction of source cells that are padding
        return sum(b.src_mask.sum() for b in batch_list) / sum(b.src.size for b in batch_list)

    assert spread(bucketed) < spread(random_batches) / 10
    assert padding(bucketed) < padding(random_batches) / 5


def test_batches_are_seeded_and_each_epoch_differs():
    encoded = numbered(500)
    first = rows(batches(encoded, 16, seed=3, epoch=2))
    assert rows(batches(encoded, 16, seed=3, epoch=2)) == first
    assert rows(batches(encoded, 16, seed=3, epoch=3)) != first
    assert rows(batches(encoded, 16, seed=4, epoch=2)) != first


def test_batches_of_nothing_and_bad_batch_size():
    assert batches([], 4) == []
    with pytest.raises(DataError, match="batch_size must be an integer >= 1, got 0"):
        batches(numbered(3), 0)
