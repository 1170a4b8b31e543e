"""BERT (models/bert.py): the embeddings, the encoder layer, both heads and the whole model.

- float64 gradient checks (random upstream gradient) of the embeddings, one encoder layer,
  the masked-LM head, the next-sentence head and a whole tiny BERT on all its parameters;
- a PyTorch twin (torch.nn, the same state_dict names) loads minigrad's weights and gives
  the same logits and gradients, in float64 to 1e-10;
- laws (hypothesis): padding never changes an output at real positions; mlm_positions
  gives exactly the rows (and gradients) of the full MLM logits; the MLM loss ignores
  positions labelled -100; the tied weight is one Parameter with the gradient of both uses;
- the model memorizes a tiny masked batch; a float32 step makes no float64 array; the
  strict backend (CuPy's rules) gives NumPy's results;
- initialization, fill_mask, errors.
"""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad import optim
from minigrad.autograd import backward
from minigrad.nn import functional as F
from models.bert import BERT, BERTConfig, FilledMasks, bert_loss, fill_mask

from helpers import BACKENDS, check_grad, tensor

to_numpy = mg.backend.to_numpy

PAD, CLS, SEP, MASK = 0, 1, 2, 3                   # the specials; real tokens are 4 .. V-1
TINY = dict(vocab_size=11, max_positions=8, n_layer=1, n_head=2, d_model=4, d_ff=8, dropout=0.0)
# Two pairs, the second padded: [CLS] a [SEP] b [SEP] [PAD]; one [MASK].
TOKENS = np.array([[CLS, 5, MASK, SEP, 7, 8, SEP],
                   [CLS, 6, 9, SEP, 10, SEP, PAD]])
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 1],
                     [0, 0, 0, 0, 1, 1, 0]])
CHOSEN = np.array([[0, 0, 1, 0, 1, 0, 0],           # mlm_positions: real tokens only
                   [0, 1, 0, 0, 1, 0, 0]], dtype=bool)
B, T = TOKENS.shape


# -- helpers ------------------------------------------------------------------------

def tiny_bert(backend="numpy", dtype="float64", seed=0, randomized=True, **overrides):
    """A tiny BERT on ``backend`` in ``dtype``; with ``randomized``, parameters U(-0.8, 0.8)
    (BERT's N(0, 0.02) start is nearly linear and would hide wrong gradients)."""
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        model = BERT(BERTConfig(**dict(TINY, **overrides)))
    model.to(dtype)
    if randomized:
        rng = np.random.default_rng(seed + 100)
        # the tied matrix appears under two names; both load into the one Parameter
        model.load_state_dict({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in model.state_dict().items()})
    return model


def batch(backend="numpy"):
    return tensor(TOKENS, backend), tensor(SEGMENTS, backend), tensor(TOKENS == PAD, backend)


def random_gradient(shape, seed=5):
    return np.random.default_rng(seed).standard_normal(shape)


# -- gradient checks ------------------------------------------------------------------
# Elementwise (every element of every parameter): the tiny model has ~330 scalars.

@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_embeddings(backend):
    embeddings = tiny_bert(backend).embeddings
    tokens, segments, _ = batch(backend)
    check_grad(lambda *params: embeddings(tokens, segments), list(embeddings.parameters()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_encoder_layer(backend):
    layer = tiny_bert(backend).encoder.layers[0]
    _, _, padding = batch(backend)
    x = tensor(random_gradient((B, T, TINY["d_model"])), backend, requires_grad=True)
    check_grad(lambda x, *params: layer(x, src_key_padding_mask=padding), [x, *layer.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_masked_lm_head(backend):
    head = tiny_bert(backend).mlm_head
    assert len(list(head.parameters())) == 6              # transform (2), norm (2), decoder (2)
    h = tensor(random_gradient((B, T, TINY["d_model"])), backend, requires_grad=True)
    check_grad(lambda h, *params: head(h), [h, *head.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_next_sentence_head(backend):
    head = tiny_bert(backend).nsp_head
    h = tensor(random_gradient((B, T, TINY["d_model"])), backend, requires_grad=True)
    check_grad(lambda h, *params: head(h), [h, *head.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("output, gelu", [("logits", "none"), ("logits-at-mlm-positions", "none"),
                                          ("loss", "none"), ("loss", "tanh")])
def test_gradcheck_whole_tiny_bert(backend, output, gelu):
    """Every parameter of a 2-layer BERT, through both heads (and bert_loss)."""
    model = tiny_bert(backend, n_layer=2, gelu_approximate=gelu)
    tokens, segments, padding = batch(backend)
    chosen = tensor(CHOSEN, backend)
    labels = np.where(CHOSEN, np.roll(TOKENS, 1, axis=1) % TINY["vocab_size"], -100)
    labels, nsp_labels = tensor(labels, backend), tensor(np.array([0, 1]), backend)

    def run(*params):
        if output == "logits":
            return model(tokens, segments, padding)
        mlm_logits, nsp_logits = model(tokens, segments, padding, mlm_positions=chosen)
        if output == "logits-at-mlm-positions":
            return mlm_logits, nsp_logits
        return bert_loss(mlm_logits, labels[chosen], nsp_logits, nsp_labels)

    check_grad(run, list(model.parameters()))


# -- PyTorch twin ------------------------------------------------------------------------

def torch_bert(torch, config):
    """The same BERT from torch.nn, under the same state_dict names."""
    nn = torch.nn
    D, V = config.d_model, config.vocab_size

    def gelu(x):
        return nn.functional.gelu(x, approximate=config.gelu_approximate)

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embeddings = nn.Embedding(V, D)
            self.segment_embeddings = nn.Embedding(config.type_vocab_size, D)
            self.position_embeddings = nn.Embedding(config.max_positions, D)
            self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)

        def forward(self, tokens, segments):
            T = tokens.shape[1]
            x = self.token_embeddings(tokens) + self.segment_embeddings(segments)
            return self.norm(x + self.position_embeddings.weight[:T])

    class MaskedLMHead(nn.Module):
        def __init__(self, token_embedding_weight):
            super().__init__()
            self.transform = nn.Linear(D, D)
            self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
            self.decoder = nn.Linear(D, V)
            self.decoder.weight = token_embedding_weight

        def forward(self, h):
            return self.decoder(self.norm(gelu(self.transform(h))))

    class NextSentenceHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.pooler = nn.Linear(D, D)
            self.classifier = nn.Linear(D, 2)

        def forward(self, h):
            return self.classifier(torch.tanh(self.pooler(h[:, 0])))

    class TorchBERT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            layer = nn.TransformerEncoderLayer(D, config.n_head, config.d_ff, 0.0, activation=gelu,
                                               layer_norm_eps=config.layer_norm_eps, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
            self.mlm_head = MaskedLMHead(self.embeddings.token_embeddings.weight)
            self.nsp_head = NextSentenceHead()

        def forward(self, tokens, segments, key_padding_mask, mlm_positions):
            h = self.encoder(self.embeddings(tokens, segments), src_key_padding_mask=key_padding_mask)
            return self.mlm_head(h[mlm_positions]), self.nsp_head(h)

    return TorchBERT().double()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("part", ["encoder-layer", "whole-model"])
@pytest.mark.parametrize("gelu", ["none", "tanh"])
def test_matches_a_pytorch_twin(backend, part, gelu):
    """Same outputs, input gradient (the layer) and parameter gradients, float64, to 1e-10."""
    torch = pytest.importorskip("torch")
    ours = tiny_bert(backend, n_layer=2, gelu_approximate=gelu)
    theirs = torch_bert(torch, ours.config)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    if part == "encoder-layer":
        ours, theirs = ours.encoder.layers[0], theirs.encoder.layers[0]
        x = random_gradient((B, T, TINY["d_model"]), seed=3)
        x_m, x_t = tensor(x, backend, requires_grad=True), torch.tensor(x, requires_grad=True)
        outs_m = [ours(x_m, src_key_padding_mask=tensor(TOKENS == PAD, backend))]
        outs_t = [theirs(x_t, src_key_padding_mask=torch.from_numpy(TOKENS == PAD))]
    else:
        tokens, segments, padding = batch(backend)
        outs_m = ours(tokens, segments, padding, mlm_positions=tensor(CHOSEN, backend))
        outs_t = theirs(*(torch.from_numpy(a) for a in (TOKENS, SEGMENTS, TOKENS == PAD, CHOSEN)))
    for k, (y_m, y_t) in enumerate(zip(outs_m, outs_t)):
        np.testing.assert_allclose(y_m.numpy(), y_t.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"output {k}")
    gys = [random_gradient(tuple(y.shape), seed=6 + k) for k, y in enumerate(outs_t)]
    torch.autograd.backward(list(outs_t), [torch.from_numpy(g) for g in gys])
    backward(list(outs_m), [tensor(g, backend).data for g in gys])
    grads_t = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    grads_m = {name: to_numpy(p.grad) for name, p in ours.named_parameters()}
    assert list(grads_m) == list(grads_t)
    if part == "encoder-layer":
        grads_t["input"], grads_m["input"] = x_t.grad.numpy(), to_numpy(x_m.grad)
    for name, g_t in grads_t.items():
        np.testing.assert_allclose(grads_m[name], g_t, rtol=1e-10, atol=1e-12, err_msg=f"gradient of {name}")


# -- laws ---------------------------------------------------------------------------------

@st.composite
def pair_batches(draw, max_batch=3, max_length=6):
    """Random (tokens, segments) of real lengths, [CLS] first; the true lengths."""
    b = draw(st.integers(1, max_batch))
    lengths = draw(st.lists(st.integers(1, max_length), min_size=b, max_size=b))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    T = max(lengths)
    tokens = rng.integers(MASK, TINY["vocab_size"], (b, T))         # real tokens and [MASK]
    tokens[:, 0] = CLS
    segments = rng.integers(0, 2, (b, T))
    return tokens, segments, lengths, rng


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@settings(deadline=None)
@given(data=st.data())
def test_padding_never_changes_an_output_at_real_positions(backend, data):
    """Each sequence of a padded batch gives, at its real positions, the MLM logits and the
    next-sentence logits it gives alone. The padding is [PAD] tokens with the default mask,
    or any tokens and segments with an explicit key_padding_mask."""
    tokens, segments, lengths, rng = data.draw(pair_batches())
    extra = data.draw(st.integers(1, 2))
    padded_T = tokens.shape[1] + extra
    real = np.arange(padded_T) < np.array(lengths)[:, None]                 # (b, padded_T)
    explicit = data.draw(st.booleans())
    fill = (lambda shape, high: rng.integers(0, high, shape)) if explicit else \
           (lambda shape, high: np.zeros(shape, dtype=np.int64))
    padded_tokens = np.where(real, np.pad(tokens, ((0, 0), (0, extra))), fill(real.shape, TINY["vocab_size"]))
    padded_segments = np.where(real, np.pad(segments, ((0, 0), (0, extra))), fill(real.shape, 2))
    model = tiny_bert(backend, n_layer=2, seed=data.draw(st.integers(0, 99)))
    mask = tensor(~real, backend) if explicit else None
    mlm, nsp = model(tensor(padded_tokens, backend), tensor(padded_segments, backend), mask)
    for i, n in enumerate(lengths):
        mlm_alone, nsp_alone = model(tensor(tokens[i:i + 1, :n], backend),
                                     tensor(segments[i:i + 1, :n], backend))
        np.testing.assert_allclose(mlm.numpy()[i, :n], mlm_alone.numpy()[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(nsp.numpy()[i], nsp_alone.numpy()[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@settings(deadline=None)
@given(data=st.data())
def test_mlm_positions_give_exactly_the_rows_of_the_full_logits(backend, data):
    """Forward: the (N, V) logits are full[mlm_positions]. Backward: an upstream gradient
    on those rows gives every parameter the gradient of the full logits with that
    gradient at the chosen rows and zero elsewhere."""
    tokens, segments, _, rng = data.draw(pair_batches())
    chosen = rng.random(tokens.shape) < data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    model = tiny_bert(backend, seed=data.draw(st.integers(0, 99)))
    gy = rng.standard_normal((int(chosen.sum()), TINY["vocab_size"]))

    def gradients(mlm_positions, g_logits):
        model.zero_grad()
        logits, _ = model(tensor(tokens, backend), tensor(segments, backend), mlm_positions=mlm_positions)
        logits.backward(tensor(g_logits, backend))
        grads = {n: to_numpy(p.grad) for n, p in model.named_parameters() if p.grad is not None}
        return logits.numpy(), grads

    full_gy = np.zeros(tokens.shape + (TINY["vocab_size"],))
    full_gy[chosen] = gy
    full, full_grads = gradients(None, full_gy)
    rows, row_grads = gradients(tensor(chosen, backend), gy)
    assert rows.shape == (chosen.sum(), TINY["vocab_size"])
    np.testing.assert_allclose(rows, full[chosen], rtol=1e-12, atol=1e-14)
    for name, g in full_grads.items():
        np.testing.assert_allclose(row_grads.get(name, 0.0 * g), g, rtol=1e-10, atol=1e-12, err_msg=name)


@settings(deadline=None)
@given(data=st.data())
def test_mlm_loss_ignores_positions_labelled_minus_100(data):
    """Changing the logits where the label is -100 changes neither the loss nor any other
    gradient; those rows get zero gradient; the loss is the mean of -log p(label) over the
    chosen positions (a NumPy oracle); the (N, V) form equals the (B, T, V) form."""
    b, t, V = (data.draw(st.integers(*bounds)) for bounds in ((1, 3), (1, 5), (2, 6)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    chosen = rng.random((b, t)) < 0.4
    chosen[rng.integers(b), rng.integers(t)] = True                           # at least one
    labels = np.where(chosen, rng.integers(0, V, (b, t)), -100)
    logits = rng.standard_normal((b, t, V))
    nsp_logits, nsp_labels = rng.standard_normal((b, 2)), rng.integers(0, 2, b)

    def losses(mlm_logits, labels):
        x = tensor(mlm_logits, requires_grad=True)
        total, mlm, nsp = bert_loss(x, tensor(labels), tensor(nsp_logits), tensor(nsp_labels))
        total.backward()
        return total.item(), mlm.item(), nsp.item(), to_numpy(x.grad)

    total, mlm, nsp, grad = losses(logits, labels)
    changed = logits.copy()
    changed[~chosen] = 1e3 * rng.standard_normal(((~chosen).sum(), V))
    assert losses(changed, labels)[:3] == (total, mlm, nsp)
    np.testing.assert_array_equal(losses(changed, labels)[3], grad)
    assert np.all(grad[~chosen] == 0) and np.any(grad[chosen] != 0)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert mlm == pytest.approx(-log_p[chosen, labels[chosen]].mean(), rel=1e-12)
    log_q = nsp_logits - np.log(np.exp(nsp_logits).sum(-1, keepdims=True))
    assert nsp == pytest.approx(-log_q[np.arange(b), nsp_labels].mean(), rel=1e-12)
    assert total == pytest.approx(mlm + nsp, rel=1e-15)
    rows_total, rows_mlm, _, _ = losses(logits[chosen], labels[chosen])
    assert (rows_total, rows_mlm) == pytest.approx((total, mlm), rel=1e-14)


@given(st.data())
@settings(max_examples=30, deadline=None)
def test_bert_loss_of_row_shards_over_the_whole_batchs_counts_adds_up_to_the_whole_batchs(data):
    """mlm_count and nsp_count (data parallelism): cut the batch's rows anywhere; each
    part's loss with the whole batch's counts, summed over the parts, is the whole
    batch's mean loss, and so are the gradients."""
    b = data.draw(st.integers(2, 5))
    t, V = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 6))
    cut = data.draw(st.integers(1, b - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    chosen = rng.random((b, t)) < 0.5
    chosen[0, 0] = True
    labels = np.where(chosen, rng.integers(0, V, (b, t)), -100)
    logits, nsp_logits, nsp_labels = rng.standard_normal((b, t, V)), rng.standard_normal((b, 2)), rng.integers(0, 2, b)

    def loss_and_grad(rows, **counts):
        x = tensor(logits[rows], requires_grad=True)
        total = bert_loss(x, tensor(labels[rows]), tensor(nsp_logits[rows]), tensor(nsp_labels[rows]), **counts)[0]
        total.backward()
        return total.item(), to_numpy(x.grad)

    whole, g_whole = loss_and_grad(slice(None))
    counts = {"mlm_count": int(chosen.sum()), "nsp_count": b}
    (first, g_first), (second, g_second) = loss_and_grad(slice(0, cut), **counts), loss_and_grad(slice(cut, b), **counts)
    assert first + second == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(np.concatenate([g_first, g_second]), g_whole, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_tying_is_one_parameter_with_the_gradient_of_both_uses(backend):
    model = tiny_bert(backend)
    E = model.embeddings.token_embeddings.weight
    assert model.mlm_head.decoder.weight is E
    assert sum(p is E for p in model.parameters()) == 1
    assert model.num_parameters() == sum(p.size for p in model.parameters())

    tokens, segments, padding = batch(backend)
    gys = [tensor(random_gradient((B, T, TINY["vocab_size"])), backend),
           tensor(random_gradient((B, 2), 7), backend)]
    mlm, nsp = model(tokens, segments, padding)
    backward([mlm, nsp], [g.data for g in gys])
    tied_grad = to_numpy(E.grad)

    # The same model with its own copy of E as the decoder weight: the tied gradient is
    # the sum of the input embedding's and the decoder's.
    untied = tiny_bert(backend)
    untied.mlm_head.decoder.weight = mg.nn.Parameter(E.data.copy())
    mlm, nsp = untied(tokens, segments, padding)
    backward([mlm, nsp], [g.data for g in gys])
    g_input = to_numpy(untied.embeddings.token_embeddings.weight.grad)
    g_output = to_numpy(untied.mlm_head.decoder.weight.grad)
    assert np.any(g_input != 0) and np.any(g_output != 0)
    np.testing.assert_allclose(tied_grad, g_input + g_output, rtol=1e-12, atol=1e-14)


# -- training ---------------------------------------------------------------------------

def test_memorizes_a_tiny_masked_batch():
    """8 pairs of 12 tokens, 2 chosen positions each (80/10/10 already applied), half of
    them NotNext: the MLM loss falls near zero and every next-sentence guess is right,
    within a bounded number of Adam steps."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    b, t, V = 8, 12, 16
    original = rng.integers(4, V, (b, t))
    original[:, 0], original[:, 5], original[:, -1] = CLS, SEP, SEP
    segments = np.tile((np.arange(t) > 5).astype(np.int64), (b, 1))   # A: 0..5, B: 6..11
    chosen = np.zeros((b, t), dtype=bool)
    for i in range(b):
        chosen[i, rng.choice([1, 2, 3, 4, 6, 7, 8, 9, 10], 2, replace=False)] = True
    tokens = original.copy()
    tokens[chosen] = MASK
    tokens[0, np.flatnonzero(chosen[0])[0]] = 7                 # a random token
    tokens[1, np.flatnonzero(chosen[1])[0]] = original[1, np.flatnonzero(chosen[1])[0]]   # kept
    labels = np.where(chosen, original, -100)
    nsp_labels = np.array([0, 1] * 4)

    mg.manual_seed(0)
    model = BERT(BERTConfig(vocab_size=V, max_positions=16, n_layer=2, n_head=2, d_model=32,
                            d_ff=64, dropout=0.0))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    tokens_t, segments_t, chosen_t = tensor(tokens), tensor(segments), tensor(chosen)
    targets, nsp_targets = tensor(labels[chosen]), tensor(nsp_labels)
    bound = 300
    for step in range(1, bound + 1):
        mlm_logits, nsp_logits = model(tokens_t, segments_t, mlm_positions=chosen_t)
        loss, mlm_loss, nsp_loss = bert_loss(mlm_logits, targets, nsp_logits, nsp_targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    assert mlm_loss.item() < 0.02, f"MLM loss {mlm_loss.item():.4f} after {step} steps"
    np.testing.assert_array_equal(nsp_logits.numpy().argmax(-1), nsp_labels)
    print(f"memorized in {step} steps, {time.perf_counter() - start:.2f} s")


def test_a_float32_training_step_makes_no_float64_array(monkeypatch):
    """Every array an op makes in forward, every gradient and the Adam state stay float32."""
    model = tiny_bert(dtype="float32", randomized=False, dropout=0.1)
    made = []
    from_op = mg.Tensor._from_op.__func__
    monkeypatch.setattr(mg.Tensor, "_from_op", classmethod(
        lambda cls, data, requires_grad: made.append(data.dtype) or from_op(cls, data, requires_grad)))
    tokens, segments, padding = batch()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    labels = np.where(CHOSEN, TOKENS, -100)
    mlm_logits, nsp_logits = model(tokens, segments, padding, mlm_positions=tensor(CHOSEN))
    loss, _, _ = bert_loss(mlm_logits, tensor(labels[CHOSEN]), nsp_logits, tensor(np.array([0, 1])))
    loss.backward()
    opt.step()
    assert {str(dtype) for dtype in made if dtype.kind == "f"} == {"float32"}
    arrays = [p.grad for p in model.parameters()] + [a for state in opt.state.values()
                                                      for a in state.values() if hasattr(a, "dtype")]
    assert {str(a.dtype) for a in arrays} == {"float32"}
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_a_float32_step_on_the_strict_backend_equals_numpys():
    """CuPy's rules on the CPU: forward, loss and gradients as on NumPy (dropout on)."""
    results = {}
    for backend in ("numpy", "strict"):
        model = tiny_bert(backend, dtype="float32", dropout=0.1, n_layer=2)
        tokens, segments, padding = batch(backend)
        mg.manual_seed(1)
        mlm_logits, nsp_logits = model(tokens, segments, padding, mlm_positions=tensor(CHOSEN, backend))
        loss, _, _ = bert_loss(mlm_logits, tensor(np.where(CHOSEN, TOKENS, -100)[CHOSEN], backend),
                               nsp_logits, tensor(np.array([0, 1]), backend))
        loss.backward()
        results[backend] = [loss.numpy()] + [to_numpy(p.grad) for p in model.parameters()]
    for ours, reference in zip(results["strict"], results["numpy"]):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_dropout_is_active_in_training_only():
    model = tiny_bert(dropout=0.3)
    tokens, segments, padding = batch()
    expected = model.eval()(tokens, segments, padding)[0].numpy()
    np.testing.assert_array_equal(model(tokens, segments, padding)[0].numpy(), expected)
    assert not np.allclose(model.train()(tokens, segments, padding)[0].numpy(), expected)


# -- initialization, defaults, fill_mask -------------------------------------------------

def test_initialization_is_berts():
    """Weights and embeddings N(0, 0.02^2), biases 0, LayerNorm gains 1 and biases 0."""
    model = tiny_bert(dtype="float32", randomized=False, vocab_size=300, d_model=64, d_ff=128,
                      max_positions=64, n_head=4)
    for name, p in model.named_parameters():
        array = p.numpy()
        if "norm" in name:
            assert np.all(array == (1.0 if name.endswith("weight") else 0.0)), name
        elif name.endswith("bias"):
            assert np.all(array == 0.0), name
        else:                             # the sample std within 4 of its standard errors
            assert abs(array.std() - 0.02) < 4 * 0.02 / np.sqrt(2 * array.size), name
            assert abs(array.mean()) < 4 * 0.02 / np.sqrt(array.size), name
    E = model.embeddings.token_embeddings.weight.numpy()      # 19,200 draws: normal, not uniform
    assert np.abs(E).max() > 3.5 * 0.02                       # (a uniform law of std 0.02 stops at 1.73 std)


def test_no_key_padding_mask_means_the_pad_tokens_are_padding():
    model = tiny_bert()
    tokens, segments, padding = batch()
    for ours, expected in zip(model(tokens, segments), model(tokens, segments, padding)):
        np.testing.assert_array_equal(ours.numpy(), expected.numpy())
    no_segments = model(tokens)[1].numpy()
    np.testing.assert_array_equal(no_segments, model(tokens, tensor(np.zeros_like(SEGMENTS)))[1].numpy())


def test_docstring_shapes():
    model = tiny_bert()
    tokens, segments, padding = batch()
    mlm, nsp = model(tokens, segments, padding)
    D, V = TINY["d_model"], TINY["vocab_size"]
    assert mlm.shape == (B, T, V) and nsp.shape == (B, 2)
    assert model(tokens, segments, padding, mlm_positions=tensor(CHOSEN))[0].shape == (CHOSEN.sum(), V)
    assert model.encode(tokens, segments, padding).shape == (B, T, D)
    assert model.embeddings(tokens, segments).shape == (B, T, D)
    assert model.embeddings.position_embeddings.weight.shape == (TINY["max_positions"], D)
    assert model.embeddings.segment_embeddings.weight.shape == (2, D)
    assert model.nsp_head.pool(model.encode(tokens)).shape == (B, D)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_fill_mask_returns_the_top_k_of_the_models_distribution(backend):
    model = tiny_bert(backend, dropout=0.2).train()
    tokens = np.array([[CLS, 5, MASK, SEP, MASK, 8, SEP], [CLS, MASK, 9, SEP, 10, SEP, PAD]])
    filled = fill_mask(model, tensor(tokens, backend), MASK, tensor(SEGMENTS, backend), top_k=3)
    assert isinstance(filled, FilledMasks) and model.training                 # mode restored
    np.testing.assert_array_equal(filled.positions, [[0, 2], [0, 4], [1, 1]])
    model.eval()
    full = F.softmax(model(tensor(tokens, backend), tensor(SEGMENTS, backend))[0], axis=-1).numpy()
    expected = np.stack([full[b, t] for b, t in filled.positions])          # (N, V)
    np.testing.assert_array_equal(filled.ids, np.argsort(-expected, axis=-1)[:, :3])
    np.testing.assert_allclose(filled.probs, np.take_along_axis(expected, filled.ids, -1), rtol=1e-12)
    assert np.all(np.diff(filled.probs, axis=-1) <= 0)
    one = fill_mask(model, [int(i) for i in tokens[0]], MASK, [int(s) for s in SEGMENTS[0]], top_k=3)
    np.testing.assert_array_equal(one.ids, filled.ids[:2])


# -- errors ------------------------------------------------------------------------------

def test_mistakes_are_named():
    model = tiny_bert()
    tokens, segments, padding = batch()
    too_long = tensor(np.full((1, TINY["max_positions"] + 1), 5))
    cases = [
        (lambda: model(too_long), "T=9 exceed max_positions=8"),
        (lambda: model(tensor(TOKENS[0])), r"tokens as integer ids of shape \(B, T\)"),
        (lambda: model(tensor(TOKENS * 1.0)), "integer ids"),
        (lambda: model(tokens, tensor(SEGMENTS[:, :3])), "segments of the shape of tokens"),
        (lambda: model(tokens, tensor(SEGMENTS + 1)), r"segments must be in \[0, type_vocab_size=2\)"),
        (lambda: model(tokens, segments, tensor(TOKENS)), "key_padding_mask as a boolean"),
        (lambda: model(tokens, segments, padding, mlm_positions=tensor(CHOSEN[:1])), "mlm_positions"),
        (lambda: bert_loss(*_logits_and_labels(model, (B, T)), tensor(np.array([0, 1]))),
         r"mlm_labels\[mlm_positions\]"),
        (lambda: bert_loss(model(tokens)[0], tensor(np.full((B, T), -100)), model(tokens)[1],
                           tensor(np.array([0]))), r"nsp_logits \(B, 2\) with nsp_labels \(B,\)"),
        (lambda: fill_mask(model, tokens, MASK + 20), r"no \[MASK\] \(id 23\)"),
        (lambda: fill_mask(model, tokens, MASK, top_k=0), "top_k must be in"),
        (lambda: BERTConfig(vocab_size=10, d_model=6, n_head=4), "divisible"),
        (lambda: BERTConfig(vocab_size=0), "vocab_size must be a positive int"),
        (lambda: BERTConfig(vocab_size=10, pad_id=10), "pad_id"),
        (lambda: BERTConfig(vocab_size=10, gelu_approximate="erf"), "gelu_approximate must be"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def _logits_and_labels(model, label_shape):
    """MLM logits at the chosen positions (N, V) with (wrongly) the full labels (B, T)."""
    tokens, segments, padding = batch()
    mlm_logits, nsp_logits = model(tokens, segments, padding, mlm_positions=tensor(CHOSEN))
    return mlm_logits, tensor(np.full(label_shape, -100)), nsp_logits
