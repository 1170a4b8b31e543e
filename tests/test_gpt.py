"""GPT (models/gpt.py): the decoder-only language model.

- float64 gradient checks of one block (input and every parameter, padding in play) and
  of a whole tiny GPT on every parameter (the tied embedding included);
- PyTorch twins built from torch.nn (nn.MultiheadAttention, LayerNorm, Linear,
  Embedding, GELU(approximate="tanh")) with the same state_dict names: the same
  logits and gradients, float64, to 1e-10 relative;
- laws (hypothesis): a later token never changes an earlier logit; padding (left or
  right) never changes a real position's logits; feeding a sequence in pieces through
  the cache equals one forward;
- weight tying is one Parameter whose gradient is the sum of both uses; GPT-2's
  initialization statistics; bad input named; memorization of a tiny corpus;
  a float32 training step makes no float64 array; every backend in BACKENDS.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import minigrad as mg
from minigrad import optim
from minigrad.backend import backend_by_name, backend_of
from minigrad.nn import functional as F
from models.gpt import GPT, Block, GPTConfig

from helpers import BACKENDS, check_grad, tensor

to_numpy = mg.backend.to_numpy

V, BLOCK, B, T = 7, 6, 2, 5
TINY = dict(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=2, d_model=4)


# -- helpers ---------------------------------------------------------------------

def build(backend="numpy", dtype="float64", seed=0, **overrides):
    """A tiny GPT (TINY, with ``overrides``) made on ``backend`` in ``dtype``, eval mode."""
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        model = GPT(GPTConfig(**{**TINY, **overrides}))
    return model.to(dtype).eval()


def randomize(module, seed=7):
    """Parameters drawn from U(-0.8, 0.8): GPT-2's small init, zero biases and unit
    LayerNorm gains would make weak checks. The tied matrix is drawn once."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = backend_of(p.data).from_numpy(rng.uniform(-0.8, 0.8, p.shape).astype(p.dtype))
    return module


def token_ids(shape, seed=1):
    return np.random.default_rng(seed).integers(0, V, shape)


def right_padding(lengths, width):
    """(B, width) boolean, True at positions >= each row's length."""
    return np.arange(width)[None, :] >= np.array(lengths)[:, None]


def left_padding(lengths, width):
    """(B, width) boolean, True at the first width - length positions of each row."""
    return np.arange(width)[None, :] < width - np.array(lengths)[:, None]


# -- gradient checks ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_block(backend):
    """Input and every parameter of one block; row 1 left-padded by 2 (its first query
    sees no key at all: output 0, gradient 0)."""
    model = randomize(build(backend))
    block = model.blocks[0]
    x = tensor(np.random.default_rng(2).standard_normal((B, T, 4)), backend, requires_grad=True)
    padding = tensor(left_padding([T, T - 2], T), backend)
    check_grad(lambda x, *params: block(x, key_padding_mask=padding), [x, *block.parameters()])


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "right-padded"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_whole_gpt(backend, padded):
    """Every parameter, element by element (tied wte.weight included: both uses)."""
    model = randomize(build(backend))
    idx = tensor(token_ids((B, T)), backend)
    padding = tensor(right_padding([T, 3], T), backend) if padded else None
    params = list(model.parameters())
    assert sum(p.size for p in params) == 28 + 24 + 2 * 244 + 8      # wte, wpe, blocks, ln_f: no lm_head
    check_grad(lambda *params: model(idx, key_padding_mask=padding), params)


# -- PyTorch twins -------------------------------------------------------------------

def torch_twin_classes(torch):
    """Block and GPT built from torch.nn, with minigrad's parameter names."""
    tnn = torch.nn

    class TorchMLP(tnn.Module):
        def __init__(self, D, bias):
            super().__init__()
            self.c_fc = tnn.Linear(D, 4 * D, bias=bias)
            self.gelu = tnn.GELU(approximate="tanh")
            self.c_proj = tnn.Linear(4 * D, D, bias=bias)

        def forward(self, u):
            return self.c_proj(self.gelu(self.c_fc(u)))

    class TorchBlock(tnn.Module):
        def __init__(self, D, h, bias):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(D, bias=bias)
            self.attn = tnn.MultiheadAttention(D, h, bias=bias, batch_first=True)
            self.ln_2 = tnn.LayerNorm(D, bias=bias)
            self.mlp = TorchMLP(D, bias)

        def forward(self, x, key_padding_mask=None):
            T = x.shape[1]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
            h = self.ln_1(x)
            a, _ = self.attn(h, h, h, attn_mask=causal, key_padding_mask=key_padding_mask,
                             need_weights=False)
            x = x + a
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.wte = tnn.Embedding(c.vocab_size, c.d_model)
            self.wpe = tnn.Embedding(c.block_size, c.d_model)
            self.blocks = tnn.ModuleList(TorchBlock(c.d_model, c.n_head, c.bias)
                                         for _ in range(c.n_layer))
            self.ln_f = tnn.LayerNorm(c.d_model, bias=c.bias)
            self.lm_head = tnn.Linear(c.d_model, c.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, idx, key_padding_mask=None):
            T = idx.shape[1]
            if key_padding_mask is None:
                positions = torch.arange(T)
            else:
                positions = ((~key_padding_mask).long().cumsum(1) - 1).clamp(min=0)
            x = self.wte(idx) + self.wpe(positions)
            for block in self.blocks:
                x = block(x, key_padding_mask)
            return self.lm_head(self.ln_f(x))

    return TorchBlock, TorchGPT


def assert_same_as_torch(torch, ours, theirs, inputs_m, inputs_t, params_only=False):
    """Load ours into theirs; one random upstream gradient; the same outputs and the
    same gradients (parameters by name; float inputs too), float64, 1e-10 relative."""
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    out_m, out_t = ours(*inputs_m), theirs(*inputs_t)
    gy = np.random.default_rng(5).standard_normal(tuple(out_t.shape))
    out_m.backward(tensor(gy, out_m.backend))
    out_t.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    named_m = dict(ours.named_parameters())
    named_t = dict(theirs.named_parameters())
    assert list(named_m) == list(named_t)
    for name, p in named_m.items():
        g_t = named_t[name].grad.numpy()
        np.testing.assert_allclose(to_numpy(p.grad), g_t, rtol=1e-10, atol=1e-12 * np.abs(g_t).max(),
                                   err_msg=f"gradient of {name}")
    for x_m, x_t in zip(inputs_m, inputs_t):
        if getattr(x_t, "requires_grad", False):
            np.testing.assert_allclose(to_numpy(x_m.grad), x_t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_block_matches_pytorch(backend, bias):
    torch = pytest.importorskip("torch")
    TorchBlock, _ = torch_twin_classes(torch)
    ours = randomize(build(backend, bias=bias)).blocks[1]
    theirs = TorchBlock(4, 2, bias).double()
    x = np.random.default_rng(3).standard_normal((B, T, 4))
    padding = right_padding([T, 2], T)
    assert_same_as_torch(torch, ours, theirs,
                         [tensor(x, backend, requires_grad=True), tensor(padding, backend)],
                         [torch.tensor(x, requires_grad=True), torch.from_numpy(padding)])


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "right-padded"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_gpt_matches_pytorch(backend, padded):
    torch = pytest.importorskip("torch")
    _, TorchGPT = torch_twin_classes(torch)
    ours = randomize(build(backend, n_layer=3))
    theirs = TorchGPT(ours.config).double()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    idx = token_ids((3, BLOCK))
    padding = right_padding([BLOCK, 4, 1], BLOCK) if padded else None
    inputs_m = [tensor(idx, backend)] + ([tensor(padding, backend)] if padded else [])
    inputs_t = [torch.from_numpy(idx)] + ([torch.from_numpy(padding)] if padded else [])
    assert_same_as_torch(torch, ours, theirs, inputs_m, inputs_t)


# -- laws ------------------------------------------------------------------------------

@given(t=st.integers(0, BLOCK - 2), seed=st.integers(0, 2**16))
def test_a_later_token_never_changes_an_earlier_logit(t, seed):
    model = randomize(build())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, BLOCK))
    changed = idx.copy()
    changed[:, t + 1:] = (idx[:, t + 1:] + rng.integers(1, V, (B, BLOCK - t - 1))) % V
    before, after = model(tensor(idx)).numpy(), model(tensor(changed)).numpy()
    np.testing.assert_allclose(after[:, :t + 1], before[:, :t + 1], rtol=1e-12, atol=1e-14)
    assert not np.allclose(after[:, t + 1:], before[:, t + 1:])       # the change is seen later


@given(lengths=st.lists(st.integers(1, BLOCK), min_size=1, max_size=4),
       side=st.sampled_from(["left", "right"]), seed=st.integers(0, 2**16))
def test_padding_never_changes_a_real_positions_logits(lengths, side, seed):
    """A padded batch gives each row's logits as that row alone, at its real positions."""
    model = randomize(build())
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, V, n) for n in lengths]
    width = max(lengths)
    idx = rng.integers(0, V, (len(rows), width))                        # padding: any ids
    padding = (left_padding if side == "left" else right_padding)(lengths, width)
    idx[~padding] = np.concatenate(rows)
    batched = model(tensor(idx), key_padding_mask=tensor(padding)).numpy()
    for b, row in enumerate(rows):
        alone = model(tensor(row[None, :])).numpy()[0]                  # (n, V)
        np.testing.assert_allclose(batched[b][~padding[b]], alone, rtol=1e-9, atol=1e-12)


@settings(deadline=None)
@given(cuts=st.lists(st.integers(1, BLOCK - 1), max_size=3, unique=True),
       padded=st.booleans(), seed=st.integers(0, 2**16))
def test_feeding_pieces_through_the_cache_equals_one_forward(cuts, padded, seed):
    model = randomize(build())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (3, BLOCK))
    padding = left_padding([BLOCK, 3, 1], BLOCK) if padded else None
    full = model(tensor(idx), key_padding_mask=padding).numpy()          # (3, BLOCK, V)
    cache = model.new_cache()
    pieces = []
    for start, end in zip([0] + sorted(cuts), sorted(cuts) + [BLOCK]):
        mask = tensor(padding[:, :end]) if padded else None              # every position so far
        pieces.append(model(tensor(idx[:, start:end]), key_padding_mask=mask, cache=cache).numpy())
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-9, atol=1e-12)


# -- weight tying and initialization ------------------------------------------------------

def test_the_output_layer_is_the_token_embedding():
    model = build()
    assert model.lm_head.weight is model.wte.weight
    names = [name for name, _ in model.named_parameters()]
    assert "wte.weight" in names and "lm_head.weight" not in names    # one Parameter, listed once
    state = model.state_dict()
    np.testing.assert_array_equal(state["lm_head.weight"], state["wte.weight"])


def test_the_tied_gradient_is_the_sum_of_both_uses():
    """Untie a copy (a separate output matrix with the same values): the tied gradient
    is the embedding's gradient plus the output layer's."""
    tied = randomize(build())
    untied = randomize(build())
    untied.lm_head.weight = mg.nn.Parameter(mg.Tensor(untied.wte.weight.data.copy()))
    idx = tensor(token_ids((B, T)))
    gy = np.random.default_rng(4).standard_normal((B, T, V))
    for model in (tied, untied):
        model(idx).backward(tensor(gy))
    g_embedding, g_output = untied.wte.weight.grad, untied.lm_head.weight.grad
    assert np.abs(g_embedding).max() > 0 and np.abs(g_output).max() > 0
    np.testing.assert_allclose(tied.wte.weight.grad, g_embedding + g_output, rtol=1e-12, atol=1e-14)


def test_gpt2_initialization_statistics():
    """N(0, 0.02) weights, N(0, 0.02 / sqrt(2N)) residual projections, zero biases, unit
    gains: each weight's mean and standard deviation within 5 standard errors."""
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, d_model=128))
    residual = 0.02 / math.sqrt(2 * 4)
    for name, p in model.named_parameters():
        w = p.numpy()
        if name.endswith("bias"):
            assert not w.any(), name
            continue
        if p.ndim == 1:
            np.testing.assert_array_equal(w, 1.0, err_msg=name)
            continue
        std = residual if name.endswith(("attn.out_proj.weight", "mlp.c_proj.weight")) else 0.02
        n = w.size
        assert abs(w.mean()) < 5 * std / math.sqrt(n), name
        assert abs(w.std() - std) < 5 * std / math.sqrt(2 * n), f"{name}: std {w.std()}, expected {std}"


# -- errors ------------------------------------------------------------------------------

def test_bad_input_is_named():
    model = build()
    with pytest.raises(ValueError, match=r"context of 7 tokens exceeds block_size=6"):
        model(tensor(token_ids((1, 7))))
    cache = model.new_cache()
    model(tensor(token_ids((1, 4))), cache=cache)
    with pytest.raises(ValueError, match=r"context of 7 tokens \(4 cached \+ 3 new\)"):
        model(tensor(token_ids((1, 3))), cache=cache)
    with pytest.raises(TypeError, match="integer token ids, got dtype float64"):
        model(tensor(np.zeros((1, 3))))
    with pytest.raises(ValueError, match=r"shape \(B, T\), got shape \(3,\)"):
        model(tensor(token_ids(3)))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 3\)"):
        model(tensor(token_ids((2, 3))), key_padding_mask=tensor(np.zeros((2, 4), dtype=bool)))
    with pytest.raises(ValueError, match="cache of 2 layers"):
        model(tensor(token_ids((1, 3))), cache=model.new_cache()[:1])
    with pytest.raises(IndexError, match=r"indices must be in \[0, 7\)"):
        model(tensor(np.array([[1, 7]])))
    with pytest.raises(ValueError, match="d_model .6. must be divisible by n_head .4."):
        GPTConfig(vocab_size=5, n_head=4, d_model=6)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        GPTConfig(vocab_size=0)


# -- training -----------------------------------------------------------------------------

def lm_loss(model, ids, padding=None, backend="numpy"):
    """Next-token cross-entropy of NumPy rows ``ids`` right-padded per ``padding``
    (padded targets ignored)."""
    target = ids[:, 1:] if padding is None else np.where(padding[:, 1:], -100, ids[:, 1:])
    mask = tensor(padding[:, :-1], backend) if padding is not None else None
    logits = model(tensor(ids[:, :-1], backend), key_padding_mask=mask)        # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tensor(target.reshape(-1), backend))


def test_memorizes_a_tiny_corpus():
    """Three lines of different lengths, right-padded in one batch: next-token loss
    below 0.02 nats within 150 Adam steps. (Their first characters differ: each
    prefix, so each next character, is then determined.)"""
    lines = ["to be or not to be", "all the world is a stage", "brevity is the soul of wit"]
    chars = sorted(set("".join(lines)))
    width = max(map(len, lines))
    ids, padding = np.zeros((3, width), dtype=np.int64), right_padding(list(map(len, lines)), width)
    for b, line in enumerate(lines):
        ids[b, :len(line)] = [chars.index(c) for c in line]
    mg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(chars), block_size=32, n_layer=2, n_head=2, d_model=32))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for step in range(1, 151):
        loss = lm_loss(model, ids, padding)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    assert loss.item() < 0.02, f"loss {loss.item():.3f} after {step} steps"
    print(f"memorized in {step} steps")


def test_a_float32_training_step_makes_no_float64_array(monkeypatch):
    mg.manual_seed(1)
    model = GPT(GPTConfig(**TINY))
    made = []
    from_op = mg.Tensor._from_op.__func__
    monkeypatch.setattr(mg.Tensor, "_from_op", classmethod(
        lambda cls, data, requires_grad: made.append(data.dtype) or from_op(cls, data, requires_grad)))
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    loss = lm_loss(model, token_ids((B, BLOCK + 1)), right_padding([BLOCK + 1, 4], BLOCK + 1))
    loss.backward()
    opt.step()
    assert {str(d) for d in made if d.kind == "f"} == {"float32"}
    arrays = [p.grad for p in model.parameters()] + [a for state in opt.state.values()
                                                      for a in state.values() if hasattr(a, "dtype")]
    assert {str(a.dtype) for a in arrays} == {"float32"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_training_step_on_every_backend(backend):
    """float32 forward, backward and update: gradients on the model's backend, and the
    same loss and gradients as on NumPy."""
    losses, grads = {}, {}
    for name in dict.fromkeys(["numpy", backend]):
        model = build(name, dtype="float32", dropout=0.1).train()
        mg.manual_seed(3)                                               # the same dropout masks
        loss = lm_loss(model, token_ids((B, BLOCK + 1)), right_padding([BLOCK + 1, 4], BLOCK + 1), name)
        loss.backward()
        optim.Adam(model.parameters(), lr=1e-3).step()
        assert all(backend_of(p.grad) is backend_by_name(name) for p in model.parameters())
        losses[name], grads[name] = loss.item(), [to_numpy(p.grad) for p in model.parameters()]
    assert np.isfinite(losses[backend])
    np.testing.assert_allclose(losses[backend], losses["numpy"], rtol=1e-6)
    for g, g_numpy in zip(grads[backend], grads["numpy"]):
        np.testing.assert_allclose(g, g_numpy, rtol=1e-5, atol=1e-7)
