"""The sequence-to-sequence models and their decoding (models/).

Each model kind learns to reverse 64 random sequences (a memorization test with a
bound on the steps), passes a float64 gradient check as a whole, decodes the same
on every backend, and keeps the laws of decoding: beam size 1 is greedy, beam
search never scores worse than greedy, cached Transformer decoding equals the
uncached one, a padded batch decodes as each sentence alone, and the Transformer
never looks ahead.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad import optim
from minigrad.nn import functional as F
from models.decoding import beam_search, greedy_decode, length_penalty
from models.seq2seq import RNNSeq2Seq
from models.transformer import TransformerSeq2Seq

from helpers import BACKENDS, check_grad, tensor

PAD, BOS, EOS = 0, 1, 2
V = 12                                   # 3 special tokens + 9 symbols

# name -> (constructor, Adam learning rate, bound on the training steps)
KINDS = {
    "gru": (lambda: RNNSeq2Seq(V, V, 16, 32, cell="gru", attention="none"), 1e-2, 400),
    "gru-bahdanau": (lambda: RNNSeq2Seq(V, V, 16, 32, cell="gru", attention="bahdanau"), 1e-2, 400),
    "lstm-luong-dot": (lambda: RNNSeq2Seq(V, V, 16, 32, cell="lstm", attention="luong-dot"), 1e-2, 400),
    "lstm-luong-general": (lambda: RNNSeq2Seq(V, V, 16, 32, cell="lstm", attention="luong-general"), 1e-2, 400),
    "lstm-luong-concat": (lambda: RNNSeq2Seq(V, V, 16, 32, cell="lstm", attention="luong-concat"), 1e-2, 400),
    "gru-bahdanau-bidirectional-2-layers": (
        lambda: RNNSeq2Seq(V, V, 16, 32, num_layers=2, cell="gru", attention="bahdanau",
                           bidirectional=True), 1e-2, 400),
    "transformer-post-norm": (
        lambda: TransformerSeq2Seq(V, V, d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                   dim_feedforward=64, dropout=0.0), 1e-2, 800),
    "transformer-pre-norm": (
        lambda: TransformerSeq2Seq(V, V, d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                   dim_feedforward=64, dropout=0.0, norm_first=True), 1e-2, 800),
}
EVAL_EVERY = 25


def make_pairs(n=64, seed=0, min_len=2, max_len=5):
    """n random sources over the 9 symbols, each target the source reversed."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, V, rng.integers(min_len, max_len + 1)) for _ in range(n)]
    return sources, [s[::-1].copy() for s in sources]


def batch(sources, targets, backend="numpy"):
    """Padded ids: src (B, S), lengths (B,), tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos>."""
    S, T = max(map(len, sources)), max(map(len, targets)) + 1
    src, tgt_in, tgt_out = (np.full((len(sources), n), PAD) for n in (S, T, T))
    for i, (s, t) in enumerate(zip(sources, targets)):
        src[i, :len(s)] = s
        tgt_in[i, 0], tgt_in[i, 1:len(t) + 1] = BOS, t
        tgt_out[i, :len(t)], tgt_out[i, len(t)] = t, EOS
    lengths = [len(s) for s in sources]
    return tensor(src, backend), lengths, tensor(tgt_in, backend), tensor(tgt_out, backend)


def loss_of(model, src, lengths, tgt_in, tgt_out):
    logits, _ = model(src, lengths, tgt_in)                                   # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD)


def exact_match(model, sources, targets, src, lengths):
    model.eval()
    out = greedy_decode(model, src, lengths, BOS, EOS, max_len=max(map(len, targets)) + 2)
    model.train()
    return float(np.mean([o == list(t) for o, t in zip(out.tokens, targets)]))


def train_to_memorize(kind):
    """Adam until greedy decoding reproduces all 64 pairs; returns (model, steps)."""
    make, lr, bound = KINDS[kind]
    mg.manual_seed(0)
    model = make()
    sources, targets = make_pairs()
    src, lengths, tgt_in, tgt_out = batch(sources, targets)
    opt = optim.Adam(model.parameters(), lr=lr)
    for step in range(1, bound + 1):
        loss = loss_of(model, src, lengths, tgt_in, tgt_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVAL_EVERY == 0 and exact_match(model, sources, targets, src, lengths) == 1.0:
            model.eval()
            return model, step
    model.eval()
    return model, None


@pytest.fixture(scope="module", params=list(KINDS))
def memorized(request):
    model, steps = train_to_memorize(request.param)
    return request.param, model, steps


# -- memorization, and decoding laws on the trained models ---------------------

def test_memorizes_64_pairs_within_the_bound(memorized):
    kind, model, steps = memorized
    assert steps is not None, f"{kind} did not reach 100% exact match within {KINDS[kind][2]} steps"
    print(f"{kind}: {model.num_parameters()} parameters, memorized in {steps} steps")


def test_beam_of_one_is_greedy(memorized):
    _, model, _ = memorized
    sources, targets = make_pairs(16, seed=1)               # unseen inputs: decoding is less certain
    src, lengths, _, _ = batch(sources, targets)
    greedy = greedy_decode(model, src, lengths, BOS, EOS, max_len=8)
    beam = beam_search(model, src, lengths, BOS, EOS, beam_size=1, max_len=8)
    assert beam.tokens == greedy.tokens
    np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-5, atol=1e-5)


def test_beam_never_scores_worse_than_greedy(memorized):
    _, model, _ = memorized
    sources, targets = make_pairs(32, seed=2, max_len=7)    # unseen and longer: a real search
    src, lengths, _, _ = batch(sources, targets)
    greedy = greedy_decode(model, src, lengths, BOS, EOS, max_len=10)
    beam = beam_search(model, src, lengths, BOS, EOS, beam_size=4, max_len=10, alpha=0.0)
    assert all(b >= g - 1e-4 for b, g in zip(beam.scores, greedy.scores)), (beam.scores, greedy.scores)


def test_greedy_score_is_the_models_log_probability_of_its_output(memorized):
    _, model, _ = memorized
    sources, targets = make_pairs(8, seed=3)
    src, lengths, _, _ = batch(sources, targets)
    max_len = 8
    out = greedy_decode(model, src, lengths, BOS, EOS, max_len=max_len)
    _, _, tgt_in, tgt_out = batch(sources, out.tokens)
    logits, _ = model(src, lengths, tgt_in)                                    # (B, T, V)
    logp = F.log_softmax(logits, axis=-1).numpy()
    gold = tgt_out.numpy()
    for b, tokens in enumerate(out.tokens):
        n = len(tokens) + (len(tokens) < max_len)                              # with <eos> if it came
        assert out.scores[b] == pytest.approx(logp[b, np.arange(n), gold[b, :n]].sum(), abs=1e-4)


@pytest.mark.parametrize("decode", ["greedy", "beam"])
def test_a_padded_batch_decodes_as_each_sentence_alone(memorized, decode):
    _, model, _ = memorized
    sources, targets = make_pairs(6, seed=4, min_len=1, max_len=6)
    run = (lambda s, n: greedy_decode(model, s, n, BOS, EOS, max_len=8)) if decode == "greedy" else \
          (lambda s, n: beam_search(model, s, n, BOS, EOS, beam_size=3, max_len=8, alpha=0.6))
    src, lengths, _, _ = batch(sources, targets)
    together = run(src, lengths)
    for i, s in enumerate(sources):
        alone = run(tensor(s[None, :]), [len(s)])
        assert alone.tokens[0] == together.tokens[i]
        assert alone.scores[0] == pytest.approx(together.scores[i], abs=1e-4)


def test_length_penalty_is_wu_et_al():
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(1, 1.0) == 1.0                                       # (5 + 1) / 6
    assert length_penalty(7, 0.5) == pytest.approx(np.sqrt(2.0))               # ((5 + 7) / 6)^0.5


# -- gradient checks of whole tiny models ----------------------------------------

TINY = {
    "gru": lambda: RNNSeq2Seq(6, 7, 3, 3, cell="gru", attention="none"),
    "gru-bahdanau-bidirectional": lambda: RNNSeq2Seq(6, 7, 3, 3, cell="gru", attention="bahdanau",
                                                     bidirectional=True),
    "lstm-luong-dot": lambda: RNNSeq2Seq(6, 7, 3, 3, cell="lstm", attention="luong-dot"),
    "lstm-luong-general-bidirectional": lambda: RNNSeq2Seq(6, 7, 3, 3, cell="lstm",
                                                           attention="luong-general", bidirectional=True),
    "lstm-luong-concat-2-layers": lambda: RNNSeq2Seq(6, 7, 3, 3, num_layers=2, cell="lstm",
                                                     attention="luong-concat", input_feeding=False),
    "transformer-post-norm": lambda: TransformerSeq2Seq(6, 7, d_model=4, nhead=2, num_encoder_layers=1,
                                                        num_decoder_layers=1, dim_feedforward=6,
                                                        dropout=0.0),
    "transformer-pre-norm-tied": lambda: TransformerSeq2Seq(6, 7, d_model=4, nhead=2, num_encoder_layers=1,
                                                            num_decoder_layers=1, dim_feedforward=6,
                                                            dropout=0.0, norm_first=True,
                                                            tie_embeddings=True),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(TINY))
def test_whole_model_gradcheck(kind, backend):
    with mg.use_backend("numpy" if backend == "strict" else backend):
        mg.manual_seed(1)
        model = TINY[kind]().double()
    model.to(backend)
    src = tensor(np.array([[3, 4, 5], [5, 3, 0]]), backend)
    # No padding in tgt_in: the padding row of an Embedding gets no gradient by design
    # (padding_idx), so an output that read it would differ from finite differences.
    # The source is padded, and its lengths keep the padding out of every result.
    tgt_in = tensor(np.array([[1, 4, 3, 6], [1, 5, 3, 4]]), backend)
    lengths = [3, 2]
    # Every parameter, one directional derivative each (fast mode: hundreds of elements).
    check_grad(lambda *params: model(src, lengths, tgt_in)[0], list(model.parameters()),
               fast_mode=True)


@pytest.mark.parametrize("kind", list(TINY))
def test_a_float32_training_step_makes_no_float64_array(kind, monkeypatch):
    """No silent float64: every array an op makes in forward, every gradient, and the
    Adam state stay float32 (NumPy upcasts quietly, e.g. float32 with a float64 table)."""
    mg.manual_seed(1)
    model = TINY[kind]()
    made = []
    from_op = mg.Tensor._from_op.__func__
    monkeypatch.setattr(mg.Tensor, "_from_op", classmethod(
        lambda cls, data, requires_grad: made.append(data.dtype) or from_op(cls, data, requires_grad)))
    src, lengths, tgt_in, tgt_out = batch([np.array([3, 4, 5]), np.array([5, 3])],
                                          [np.array([4, 3, 6]), np.array([5, 3, 4])])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(src, lengths, tgt_in)[0].reshape(-1, 7), tgt_out.reshape(-1),
                           ignore_index=PAD)
    loss.backward()
    opt.step()
    floats = {str(dtype) for dtype in made if dtype.kind == "f"}
    assert floats == {"float32"}, f"{kind}: op outputs of dtypes {floats}"
    arrays = [p.grad for p in model.parameters()] + [a for state in opt.state.values()
                                                      for a in state.values() if hasattr(a, "dtype")]
    assert {str(a.dtype) for a in arrays} == {"float32"}
    assert all(p.dtype == np.float32 for p in model.parameters())


# -- the Transformer: cache and causality; every model on every backend -------------

def tiny_transformer(norm_first=False, backend="numpy"):
    with mg.use_backend("numpy" if backend == "strict" else backend):
        mg.manual_seed(2)
        model = TransformerSeq2Seq(V, V, d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                                   dim_feedforward=16, dropout=0.0, norm_first=norm_first)
    return model.double().to(backend).eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_transformer_steps_equal_the_uncached_forward(norm_first, backend):
    model = tiny_transformer(norm_first, backend)
    sources, targets = make_pairs(5, seed=5)
    src, lengths, tgt_in, _ = batch(sources, targets, backend)
    full, _ = model(src, lengths, tgt_in)                                      # (B, T, V)
    encoded = model.encode(src, lengths)
    state = model.start(encoded)
    for t in range(tgt_in.shape[1]):
        logits, state, _ = model.step(encoded, state, tgt_in[:, t])           # (B, V)
        np.testing.assert_allclose(logits.numpy(), full.numpy()[:, t], rtol=1e-9, atol=1e-12)


@settings(deadline=None)
@given(t=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_transformer_logits_at_t_ignore_later_target_tokens(t, seed):
    model = tiny_transformer()
    sources, targets = make_pairs(3, seed=6, min_len=5, max_len=5)
    src, lengths, tgt_in, _ = batch(sources, targets)
    before, _ = model(src, lengths, tgt_in)                                    # (B, T, V)
    changed = tgt_in.numpy().copy()
    changed[:, t + 1:] = np.random.default_rng(seed).integers(0, V, changed[:, t + 1:].shape)
    after, _ = model(src, lengths, tensor(changed))
    np.testing.assert_array_equal(after.numpy()[:, :t + 1], before.numpy()[:, :t + 1])


@pytest.mark.parametrize("kind", list(TINY))
def test_models_decode_the_same_on_every_backend(kind):
    """The strict backend (CuPy's rules on the CPU) gives NumPy's results; a GPU run adds CuPy."""
    results = {}
    for backend in ["numpy", "strict"] + (["cupy"] if _gpu() else []):
        with mg.use_backend("numpy" if backend == "strict" else backend):
            mg.manual_seed(3)
            model = TINY[kind]()
        model.to(backend).eval()
        src = tensor(np.array([[3, 4, 5], [5, 3, 0], [4, 0, 0]]), backend)   # the tiny vocabularies
        tgt_in = tensor(np.array([[1, 4, 3, 6], [1, 5, 3, 4], [1, 3, 0, 0]]), backend)
        lengths = [3, 2, 1]
        logits, _ = model(src, lengths, tgt_in)
        greedy = greedy_decode(model, src, lengths, BOS, EOS, max_len=6)
        beam = beam_search(model, src, lengths, BOS, EOS, beam_size=3, max_len=6, alpha=0.6)
        results[backend] = logits.numpy(), greedy.tokens, beam.tokens
    for backend, (logits, greedy, beam) in results.items():
        np.testing.assert_allclose(logits, results["numpy"][0], rtol=1e-5, atol=1e-6)
        assert (greedy, beam) == results["numpy"][1:], backend


def test_rnn_attention_weights_are_returned_per_step_and_hide_padding():
    mg.manual_seed(4)
    model = RNNSeq2Seq(V, V, 8, 8, cell="gru", attention="bahdanau").eval()
    sources, targets = make_pairs(4, seed=8)
    src, lengths, tgt_in, _ = batch(sources, targets)
    _, attention = model(src, lengths, tgt_in)                                 # (B, T, S)
    assert attention.shape == (4, tgt_in.shape[1], src.shape[1])
    weights = attention.numpy()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    for b, n in enumerate(lengths):
        assert np.all(weights[b, :, n:] == 0.0)


def test_teacher_forcing_below_one_feeds_predictions_in_training_only():
    mg.manual_seed(5)
    model = RNNSeq2Seq(V, V, 8, 8, cell="gru", attention="bahdanau", teacher_forcing=0.0)
    sources, targets = make_pairs(8, seed=9)
    src, lengths, tgt_in, _ = batch(sources, targets)
    scrambled = tgt_in.numpy().copy()
    scrambled[:, 1:] = (scrambled[:, 1:] + 1) % V
    # teacher_forcing = 0: after the first step the gold tokens are never read in training
    train_a, _ = model(src, lengths, tgt_in)
    train_b, _ = model(src, lengths, tensor(scrambled))
    np.testing.assert_array_equal(train_a.numpy(), train_b.numpy())
    model.eval()                                                               # evaluation always reads them
    eval_a, _ = model(src, lengths, tgt_in)
    eval_b, _ = model(src, lengths, tensor(scrambled))
    assert not np.allclose(eval_a.numpy()[:, 1:], eval_b.numpy()[:, 1:])


def test_bad_model_arguments_are_named():
    with pytest.raises(ValueError, match="attention must be one of"):
        RNNSeq2Seq(V, V, attention="luong")
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNSeq2Seq(V, V, cell="rnn")
    with pytest.raises(ValueError, match="teacher_forcing must be in"):
        RNNSeq2Seq(V, V, teacher_forcing=1.5)


def _gpu():
    try:
        mg.backend.backend_by_name("cupy")
        return True
    except mg.BackendError:
        return False


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("kind", ["gru-bahdanau-bidirectional", "transformer-post-norm"])
def test_a_beam_wide_enough_to_keep_every_prefix_finds_the_exhaustive_best(kind, alpha):
    """With K >= the number of prefixes nothing is pruned, so beam search must return the
    best hypothesis under log P / lp of all sequences of up to max_len tokens."""
    import itertools
    mg.manual_seed(6)
    model = TINY[kind]().double().eval()
    V_tgt, max_len = 7, 3
    src, lengths = tensor(np.array([[3, 4, 5]])), [3]
    symbols = [t for t in range(V_tgt) if t != EOS]
    # every finished sequence (n < max_len tokens, then <eos>) and every unfinished one of max_len
    candidates = [list(c) + [EOS] for n in range(max_len) for c in itertools.product(symbols, repeat=n)]
    candidates += [list(c) for c in itertools.product(symbols, repeat=max_len)]
    T = max(map(len, candidates))
    tgt_in = np.full((len(candidates), T), PAD)
    for i, c in enumerate(candidates):
        tgt_in[i, 0], tgt_in[i, 1:len(c)] = BOS, c[:-1]
    logits, _ = model(tensor(np.repeat(src.numpy(), len(candidates), axis=0)), lengths * len(candidates),
                      tensor(tgt_in))
    logp = F.log_softmax(logits, axis=-1).numpy()
    def normalized(i, c):
        raw = sum(logp[i, t, y] for t, y in enumerate(c))
        n = len(c) - (c[-1] == EOS)
        return raw / length_penalty(n, alpha), raw
    best_i = max(range(len(candidates)), key=lambda i: normalized(i, candidates[i])[0])
    expected = [y for y in candidates[best_i] if y != EOS]
    beam = beam_search(model, src, lengths, BOS, EOS, beam_size=len(symbols) ** (max_len - 1),
                       max_len=max_len, alpha=alpha)
    assert beam.tokens[0] == expected
    assert beam.scores[0] == pytest.approx(normalized(best_i, candidates[best_i])[1], abs=1e-9)
