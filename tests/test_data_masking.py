"""minigrad.data for BERT: the BERT specials in the tokenizers, the paper's masking (15% of
the real tokens, 80/10/10) as statistical laws, and the next-sentence pairs (50/50, never the
true next as the random one, the input layout, truncation, reproducible batches)."""
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigrad.data import (
    BERT_SPECIALS, CLS_ID, IGNORE_INDEX, IS_NEXT, MASK_ID, NOT_NEXT, PAD_ID, SEP_ID, SPECIALS,
    DataError, MLMBatch, SentencePairs, build_tokenizer, mask_tokens, pack_pairs,
    split_segments, tokenizer_from_dict, truncate_pair,
)
from minigrad.data.masking import FIRST_REAL_ID

KINDS = ["char", "word", "bpe"]
SIGMAS = 4                                         # binomial bounds: 4 standard deviations


def within_binomial(count, total, p):
    return abs(count - p * total) <= SIGMAS * np.sqrt(total * p * (1 - p))


def expected_count(n, mask_prob=0.15):
    """The number of positions the module docstring promises to choose among n real tokens."""
    return 0 if n == 0 else max(1, int(np.floor(mask_prob * n + 0.5)))


@st.composite
def bert_rows(draw, vocab_size):
    """A (B, T) batch laid out as [CLS] A [SEP] B [SEP] <pad>.., real ids >= 7 (some <unk>)."""
    B = draw(st.integers(1, 6))
    rows = []
    for _ in range(B):
        a, b = (draw(st.lists(st.integers(FIRST_REAL_ID, vocab_size - 1), min_size=1, max_size=30))
                for _ in range(2))
        a[0] = draw(st.sampled_from([a[0], SPECIALS.index("<unk>")]))
        rows.append([CLS_ID, *a, SEP_ID, *b, SEP_ID])
    T = max(map(len, rows))
    return np.array([row + [PAD_ID] * (T - len(row)) for row in rows])


# -- the BERT specials in the tokenizers ----------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_bert_tokenizers_have_the_specials_at_their_constant_ids(kind):
    tokenizer = build_tokenizer(kind, ["the cat sat on the mat", "a dog"], specials=BERT_SPECIALS)
    assert tokenizer.vocab[:7] == BERT_SPECIALS and tokenizer.specials == BERT_SPECIALS
    specials = [tokenizer.vocab.index(s) for s in ("[CLS]", "[SEP]", "[MASK]")]
    assert specials == [CLS_ID, SEP_ID, MASK_ID]
    assert tokenizer_from_dict(tokenizer.to_dict()) == tokenizer
    assert tokenizer_from_dict(tokenizer.to_dict()).specials == BERT_SPECIALS
    assert build_tokenizer(kind, ["the cat"]).specials == SPECIALS       # the default is unchanged


@pytest.mark.parametrize("kind", KINDS)
def test_bert_tokenizers_read_written_specials_in_any_kind(kind):
    tokenizer = build_tokenizer(kind, ["the cat sat on the mat"], specials=BERT_SPECIALS)
    ids = tokenizer.encode("the [MASK] sat")
    assert ids == tokenizer.encode("the ") + [MASK_ID] + tokenizer.encode(" sat")
    assert ids.count(MASK_ID) == 1
    assert tokenizer.encode("[CLS]the[SEP]") == [CLS_ID, *tokenizer.encode("the"), SEP_ID]


@pytest.mark.parametrize("kind", KINDS)
def test_bert_fit_learns_nothing_from_the_written_specials(kind):
    with_specials = build_tokenizer(kind, ["the [MASK] cat [SEP] [CLS]"], specials=BERT_SPECIALS)
    without = build_tokenizer(kind, ["the  cat  "], specials=BERT_SPECIALS)
    assert with_specials == without and "M" not in "".join(with_specials.vocab[7:])


def test_bad_specials_are_a_clear_error():
    with pytest.raises(DataError, match="specials must be SPECIALS"):
        build_tokenizer("char", ["abc"], specials=["<pad>", "[CLS]"])


# -- masking: the laws of every draw --------------------------------------------------------

@given(tokens=bert_rows(vocab_size=40), seed=st.integers(0, 2**32),
       mask_prob=st.sampled_from([0.15, 0.5, 1.0]))
def test_masking_chooses_real_tokens_only_and_leaves_the_rest_alone(tokens, seed, mask_prob):
    inputs, labels = mask_tokens(tokens, 40, np.random.default_rng(seed), mask_prob)
    assert inputs.shape == labels.shape == tokens.shape
    assert inputs.dtype == labels.dtype == np.int64
    chosen = labels != IGNORE_INDEX
    eligible = tokens >= FIRST_REAL_ID
    assert not (chosen & ~eligible).any()                          # never padding or a special
    assert (labels[chosen] == tokens[chosen]).all()               # the label is the original
    assert (inputs[~chosen] == tokens[~chosen]).all()             # unchosen inputs unchanged
    substituted = inputs[chosen & (inputs != tokens) & (inputs != MASK_ID)]
    assert (substituted >= FIRST_REAL_ID).all() and (substituted < 40).all()   # never a special
    counts = [expected_count(n, mask_prob) for n in eligible.sum(axis=1)]
    assert chosen.sum(axis=1).tolist() == counts                  # the per-sequence count


@given(n=st.integers(0, 400))
def test_the_count_is_15_percent_of_the_real_tokens_rounded_and_at_least_one(n):
    tokens = np.array([[CLS_ID] + [FIRST_REAL_ID + 3] * n + [SEP_ID, PAD_ID]])
    _, labels = mask_tokens(tokens, 20, np.random.default_rng(n))
    k = int((labels != IGNORE_INDEX).sum())
    assert (k == 0) if n == 0 else (k >= 1 and abs(k - 0.15 * n) <= max(0.5, 1 - 0.15 * n))


# -- masking: the statistics over many draws ------------------------------------------------

def test_every_eligible_position_is_chosen_alike():
    """A fixed row with 20 real tokens among specials and padding; each real position is
    chosen with probability k / n = 3 / 20 (4-sigma binomial bounds), the others never."""
    row = [CLS_ID] + list(range(10, 20)) + [SEP_ID] + list(range(20, 30)) + [SEP_ID] + [PAD_ID] * 5
    tokens = np.array([row] * 50)                                   # 50 rows x 80 draws
    chosen = sum((mask_tokens(tokens, 40, np.random.default_rng([1, draw]))[1] != IGNORE_INDEX)
                 .sum(axis=0) for draw in range(80))
    total = 50 * 80
    eligible = np.array(row) >= FIRST_REAL_ID
    assert (chosen[~eligible] == 0).all()
    assert all(within_binomial(c, total, 3 / 20) for c in chosen[eligible])


def test_chosen_positions_split_80_10_10():
    vocab_size = 1000
    rng = np.random.default_rng(0)
    tokens = rng.integers(FIRST_REAL_ID, vocab_size, size=(4000, 100))    # 15 chosen per row
    inputs, labels = mask_tokens(tokens, vocab_size, rng)
    chosen = labels != IGNORE_INDEX
    total = int(chosen.sum())
    assert total == 4000 * 15
    masked = int((inputs[chosen] == MASK_ID).sum())
    unchanged = int((inputs[chosen] == tokens[chosen]).sum())
    replaced = total - masked - unchanged
    p_same = 1 / (vocab_size - FIRST_REAL_ID)          # a random token can be the original
    assert within_binomial(masked, total, 0.8)
    assert within_binomial(replaced, total, 0.1 * (1 - p_same))
    assert within_binomial(unchanged, total, 0.1 * (1 + p_same))


def test_random_replacements_cover_the_real_ids_uniformly_and_no_special():
    vocab_size = 12                                                # real ids 7..11
    rng = np.random.default_rng(1)
    tokens = np.full((3000, 40), 8)
    inputs, labels = mask_tokens(tokens, vocab_size, rng)
    chosen = labels != IGNORE_INDEX
    replaced = inputs[chosen & (inputs != MASK_ID)]                  # random or unchanged
    random_ids = replaced[replaced != 8]
    counts = np.bincount(random_ids, minlength=vocab_size)
    assert counts[:FIRST_REAL_ID].sum() == 0 and counts[8] == 0
    assert all(within_binomial(counts[i], len(random_ids), 1 / 4) for i in (7, 9, 10, 11))


def test_masking_is_reproducible_from_the_generator_seed():
    tokens = np.random.default_rng(0).integers(FIRST_REAL_ID, 50, size=(8, 64))
    first = mask_tokens(tokens, 50, np.random.default_rng([3, 9]))
    again = mask_tokens(tokens, 50, np.random.default_rng([3, 9]))
    other = mask_tokens(tokens, 50, np.random.default_rng([3, 10]))
    assert all((x == y).all() for x, y in zip(first, again))
    assert not (first[1] == other[1]).all()


def test_masking_a_32_by_128_batch_takes_well_under_a_millisecond_or_two():
    tokens = np.random.default_rng(0).integers(FIRST_REAL_ID, 30000, size=(32, 128))
    rng = np.random.default_rng(0)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        mask_tokens(tokens, 30000, rng)
        times.append(time.perf_counter() - start)
    assert min(times) < 2e-3


@pytest.mark.parametrize("tokens, vocab_size, message", [
    (np.array([7, 8, 9]), 20, r"shape \(B, T\)"),
    (np.array([[7.0, 8.0]]), 20, "integer dtype"),
    (np.array([[7, 8]]), 7, "real tokens after the 7 specials"),
    (np.array([[7, 25]]), 20, "ids in 0..19, got ids from 7 to 25"),
])
def test_masking_bad_arguments_are_clear_errors(tokens, vocab_size, message):
    with pytest.raises(DataError, match=message):
        mask_tokens(tokens, vocab_size, np.random.default_rng(0))


# -- packing, truncation and the layout -----------------------------------------------------

def truncate_by_loop(m, n, max_len):
    """The authors' truncate_seq_pair: shorten the longer side (B on a tie) until it fits."""
    while m + n > max_len - 3:
        if m > n:
            m -= 1
        else:
            n -= 1
    return m, n


@pytest.mark.parametrize("max_len", range(5, 41))
def test_truncation_shortens_the_longer_side_first(max_len):
    """Every pair of lengths 1..30, against the loop, as arrays (the closed form's branches)."""
    m, n = np.meshgrid(np.arange(1, 31), np.arange(1, 31))
    m_kept, n_kept = truncate_pair(m.ravel(), n.ravel(), max_len)
    expected = [truncate_by_loop(a, b, max_len) for a, b in zip(m.ravel(), n.ravel())]
    assert list(zip(m_kept.tolist(), n_kept.tolist())) == expected
    assert (m_kept + n_kept + 3 <= max_len).all() and min(m_kept.min(), n_kept.min()) >= 1


@given(pairs=st.lists(st.tuples(st.lists(st.integers(7, 99), min_size=1, max_size=20),
                                st.lists(st.integers(7, 99), min_size=1, max_size=20)),
                      min_size=1, max_size=5),
       max_len=st.integers(5, 50))
def test_packed_pairs_have_the_paper_layout(pairs, max_len):
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    tokens, segments, padding_mask = pack_pairs(first, second, max_len)
    B, T = tokens.shape
    assert segments.shape == padding_mask.shape == (B, T) and padding_mask.dtype == bool
    for row, (a, b) in enumerate(pairs):
        m, n = truncate_by_loop(len(a), len(b), max_len)
        length = m + n + 3
        assert length <= max_len
        assert tokens[row, :length].tolist() == [CLS_ID, *a[len(a) - m:], SEP_ID, *b[:n], SEP_ID]
        assert segments[row].tolist() == [0] * (m + 2) + [1] * (n + 1) + [0] * (T - length)
        assert padding_mask[row].tolist() == [False] * length + [True] * (T - length)
        assert (tokens[row, length:] == PAD_ID).all()
    assert T == max(sum(truncate_by_loop(len(a), len(b), max_len)) + 3 for a, b in pairs)


def test_single_segments_for_filling_masks():
    tokens, segments, padding_mask = pack_pairs([[7, MASK_ID, 9], [8]], max_len=4)
    assert tokens.tolist() == [[CLS_ID, 7, MASK_ID, SEP_ID], [CLS_ID, 8, SEP_ID, PAD_ID]]
    assert segments.tolist() == [[0] * 4] * 2
    assert padding_mask.tolist() == [[False] * 4, [False] * 3 + [True]]


# -- next-sentence pairs --------------------------------------------------------------------

# 40 paragraphs of 1..4 lines; line j of paragraph p is the one word "p<p>l<j>", so a word
# tokenizer gives every segment its own id and a pair's A and B can be read back.
PARAGRAPH_SIZES = [1 + (p * 7) % 4 for p in range(40)]
TEXT = "\n\n".join("\n".join(f"p{p}l{j}" for j in range(size))
                   for p, size in enumerate(PARAGRAPH_SIZES)) + "\n"
NAMES = [f"p{p}l{j}" for p, size in enumerate(PARAGRAPH_SIZES) for j in range(size)]


@pytest.fixture(scope="module")
def pairs():
    return SentencePairs(TEXT, build_tokenizer("word", [TEXT], specials=BERT_SPECIALS))


def read_back(batch, tokenizer):
    """(index of A, index of B) of each row, from the unmasked tokens."""
    original = np.where(batch.mlm_labels != IGNORE_INDEX, batch.mlm_labels, batch.tokens)
    sep = [np.flatnonzero(row == SEP_ID) for row in original]
    names = [(tokenizer.vocab[row[1]], tokenizer.vocab[row[s[0] + 1]])
             for row, s in zip(original, sep)]
    return [(NAMES.index(a), NAMES.index(b)) for a, b in names]


def test_segments_of_lines_and_sentences():
    text = ("  First line. Still one.\nSecond Line!\n\n\n \n"
            "Third \"Quoted\" e.g. this. And? \"Yes\"\n")
    assert split_segments(text, "line") == [["First line. Still one.", "Second Line!"],
                                            ["Third \"Quoted\" e.g. this. And? \"Yes\""]]
    assert split_segments(text, "sentence") == [["First line.", "Still one.", "Second Line!"],
                                                ["Third \"Quoted\" e.g. this.", "And?", "\"Yes\""]]
    with pytest.raises(DataError, match="unit must be one of"):
        split_segments(text, "word")


def test_next_sentence_pairs_half_true_and_random_never_the_true_next(pairs):
    tokenizer = build_tokenizer("word", [TEXT], specials=BERT_SPECIALS)
    last_of_paragraph = set(np.cumsum(PARAGRAPH_SIZES) - 1)
    assert pairs.num_segments == len(NAMES) and pairs.num_anchors == len(NAMES) - 40
    labels, draws = [], 0
    for step in range(60):
        batch = pairs.batch(32, 16, seed=5, step=step)
        assert isinstance(batch, MLMBatch) and batch.nsp_labels.dtype == np.int64
        for (a, b), label in zip(read_back(batch, tokenizer), batch.nsp_labels):
            assert a not in last_of_paragraph                     # A always has a true next
            if label == IS_NEXT:
                assert b == a + 1
            else:
                assert label == NOT_NEXT and b not in (a, a + 1)   # never the true next
            labels.append(label)
    assert within_binomial(labels.count(IS_NEXT), len(labels), 0.5)


def test_bert_batches_layout_and_truncation():
    text = "\n".join(" ".join(f"w{i}" for i in range(j, j + 3 + j % 9)) for j in range(60))
    tokenizer = build_tokenizer("word", [text], specials=BERT_SPECIALS)
    for max_len in (5, 9, 40):
        batch = SentencePairs(text, tokenizer).batch(16, max_len, seed=0, step=max_len)
        B, T = batch.tokens.shape
        original = np.where(batch.mlm_labels != IGNORE_INDEX, batch.mlm_labels, batch.tokens)
        lengths = (~batch.padding_mask).sum(axis=1)
        assert lengths.max() == T and (lengths <= max_len).all()
        assert (batch.padding_mask == (original == PAD_ID)).all()
        assert (original[:, 0] == CLS_ID).all() and (batch.tokens[:, 0] == CLS_ID).all()
        for row, length in zip(original, lengths):
            first, second = np.flatnonzero(row == SEP_ID)
            assert second == length - 1 and first >= 2 and second >= first + 2
        first_sep = np.argmax(original == SEP_ID, axis=1)                # (B,)
        is_b = (np.arange(T)[None, :] > first_sep[:, None]) & ~batch.padding_mask
        assert (batch.segments == is_b).all()                     # 1 on B [SEP], 0 elsewhere


def test_bert_batches_depend_on_seed_and_step_only(pairs):
    first = pairs.batch(8, 16, seed=2, step=11)
    pairs.batch(8, 16, seed=2, step=3)
    again = pairs.batch(8, 16, seed=2, step=11)
    other = pairs.batch(8, 16, seed=2, step=12)
    fields = ("tokens", "segments", "padding_mask", "mlm_labels", "nsp_labels")
    assert all((getattr(first, f) == getattr(again, f)).all() for f in fields)
    assert not all(getattr(first, f).shape == getattr(other, f).shape
                   and (getattr(first, f) == getattr(other, f)).all() for f in fields)


def test_eval_batches_take_every_anchor_once_and_are_fixed(pairs):
    tokenizer = build_tokenizer("word", [TEXT], specials=BERT_SPECIALS)
    batches = pairs.eval_batches(7, 16)
    again = SentencePairs(TEXT, tokenizer).eval_batches(7, 16)
    assert all((x.tokens == y.tokens).all() and (x.mlm_labels == y.mlm_labels).all()
               and (x.nsp_labels == y.nsp_labels).all() for x, y in zip(batches, again))
    anchors = [a for batch in batches for a, _ in read_back(batch, tokenizer)]
    assert anchors == pairs.anchors.tolist()
    assert [len(b.nsp_labels) for b in batches] == [7] * (len(anchors) // 7) + [len(anchors) % 7]


def test_sentence_pairs_bad_inputs_are_clear_errors():
    plain = build_tokenizer("word", [TEXT])
    with pytest.raises(DataError, match="fit it with specials=BERT_SPECIALS"):
        SentencePairs(TEXT, plain)
    bert = build_tokenizer("word", [TEXT], specials=BERT_SPECIALS)
    with pytest.raises(DataError, match="at least 3 lines and one paragraph of two or more, "
                                        "got 3 lines in 3 paragraphs"):
        SentencePairs("a\n\nb\n\nc\n", bert)
    with pytest.raises(DataError, match="batch_size must be an integer >= 1"):
        SentencePairs(TEXT, bert).batch(0, 16, 0, 0)
    with pytest.raises(DataError, match="max_len must leave room"):
        SentencePairs(TEXT, bert).batch(2, 4, 0, 0)


@pytest.mark.parametrize("first, second, message", [
    ([], None, "at least one segment to pack"),
    ([[7]], [[8], [9]], "as many second segments as first ones, got 2 and 1"),
    ([[7], []], [[8], [9]], "pair 1: expected two segments of at least one token, got lengths 0"),
])
def test_packing_bad_segments_are_clear_errors(first, second, message):
    with pytest.raises(DataError, match=message):
        pack_pairs(first, second, max_len=16)
