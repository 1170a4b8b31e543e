"""The Transformer (minigrad/nn/transformer.py) and the sinusoidal positional encoding
(minigrad/nn/positional_encoding.py).

- float64 gradient checks of each layer (encoder and decoder; post-norm and pre-norm;
  relu and gelu), of two-layer stacks and of a tiny Transformer (d_model 4, nhead 2,
  1 + 1 layers, dim_feedforward 8) w.r.t. src, tgt and every parameter, masks in play;
- laws (hypothesis): under a causal mask a later target token never changes an
  earlier output; a padded source never changes the output at real target
  positions; ``load_state_dict(state_dict())`` round-trips exactly;
- PyTorch's layers, stacks and Transformer loaded into minigrad give the same outputs,
  input gradients and parameter gradients; same state_dict names; the same causal mask;
- initialization, dropout, docstring shapes, bad input;
- the positional encoding against the paper's formula, evaluated directly.
Every test that touches arrays runs on each backend in BACKENDS.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.nn import (
    LayerNorm, PositionalEncoding, Transformer, TransformerDecoder, TransformerDecoderLayer,
    TransformerEncoder, TransformerEncoderLayer, sinusoidal_positional_encoding,
)
from helpers import BACKENDS, check_grad, tensor

to_numpy = mg.backend.to_numpy

D, NHEAD, F, B, S, T = 4, 2, 8, 2, 4, 3   # d_model, heads, dim_feedforward, batch, source, target
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
LAYER_OPTIONS = [dict(norm_first=n, activation=a) for n in (False, True) for a in ("relu", "gelu")]
LAYER_IDS = [f"{'pre' if o['norm_first'] else 'post'}-norm-{o['activation']}" for o in LAYER_OPTIONS]


# -- helpers --------------------------------------------------------------------

def build(backend, cls, *args, dtype="float64", seed=0, **kwargs):
    """``cls(*args, **kwargs)`` made on ``backend``, in ``dtype``."""
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        module = cls(*args, **kwargs)
    return module.to(dtype)


def encoder_layer(backend, dropout=0.0, **kwargs):
    return build(backend, TransformerEncoderLayer, D, NHEAD, F, dropout=dropout, **kwargs)


def decoder_layer(backend, dropout=0.0, **kwargs):
    return build(backend, TransformerDecoderLayer, D, NHEAD, F, dropout=dropout, **kwargs)


def tiny_transformer(backend, layers=1, dropout=0.0, **kwargs):
    return build(backend, Transformer, D, NHEAD, layers, layers, F, dropout=dropout, **kwargs)


def randomize(module, seed=7):
    """Random parameters (zero biases and unit LayerNorm gains would hide bugs)."""
    rng = np.random.default_rng(seed)
    module.load_state_dict({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in module.state_dict().items()})
    return module


def sequences(seed=1, dtype="float64"):
    """NumPy src (B, S, D) and tgt (B, T, D)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, S, D)).astype(dtype), rng.standard_normal((B, T, D)).astype(dtype)


def padding(length, padded=1):
    """A key padding mask (B, length): the last ``padded`` positions of batch 1 are padding."""
    mask = np.zeros((B, length), dtype=bool)
    mask[1, length - padded:] = True
    return mask


def causal(length, backend="numpy", dtype="float64"):
    return Transformer.generate_square_subsequent_mask(length, dtype=dtype, backend=backend)


def encoder_masks(seed=3):
    """src_mask float (S, S) (with -inf entries; key 0 always allowed), src_key_padding_mask."""
    rng = np.random.default_rng(seed)
    src_mask = rng.standard_normal((S, S))
    src_mask[(rng.random((S, S)) < 0.3) & (np.arange(S) > 0)] = -np.inf
    return dict(src_mask=src_mask, src_key_padding_mask=padding(S))


def decoder_masks(seed=4):
    """tgt_mask causal (float), memory_mask boolean (T, S), both key padding masks.
    Position 0 of every sequence is real, so no query row loses every key."""
    rng = np.random.default_rng(seed)
    memory_mask = rng.random((T, S)) < 0.3
    memory_mask[:, 0] = False
    return dict(tgt_mask=causal(T).numpy(), memory_mask=memory_mask,
                tgt_key_padding_mask=padding(T), memory_key_padding_mask=padding(S, 2))


def transformer_masks():
    """The masks a seq2seq model passes: source padding (for the encoder and the memory),
    the causal target mask, target padding."""
    return dict(src_key_padding_mask=padding(S, 2), memory_key_padding_mask=padding(S, 2),
                tgt_mask=causal(T).numpy(), tgt_key_padding_mask=padding(T))


def on_backend(masks, backend, dtype="float64"):
    return {k: tensor(v.astype(dtype) if v.dtype.kind == "f" else v, backend) for k, v in masks.items()}


# -- gradient checks --------------------------------------------------------------------
# Element-wise everywhere: the tiny Transformer has 448 parameters, two forwards of ~1 ms
# each per element, so fast_mode (one random direction per input) is not needed.

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_gradcheck_encoder_layer(backend, options):
    layer = randomize(encoder_layer(backend, **options))
    src = tensor(sequences()[0], backend, requires_grad=True)
    masks = on_backend(encoder_masks(), backend)
    check_grad(lambda x, *params: layer(x, **masks), [src, *layer.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_gradcheck_decoder_layer(backend, options):
    layer = randomize(decoder_layer(backend, **options))
    memory, tgt = (tensor(a, backend, requires_grad=True) for a in sequences())
    masks = on_backend(decoder_masks(), backend)
    check_grad(lambda y, m, *params: layer(y, m, **masks), [tgt, memory, *layer.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_two_layer_stacks(backend, norm_first):
    """Each deep-copied layer gets its own gradient (fast_mode: 2 x 2 layers, ~800 parameters)."""
    with mg.use_backend(backend):
        norm = LayerNorm(D)
    encoder = randomize(build(backend, TransformerEncoder, encoder_layer(backend, norm_first=norm_first), 2, norm))
    decoder = randomize(build(backend, TransformerDecoder, decoder_layer(backend, norm_first=norm_first), 2), seed=8)
    src, tgt = (tensor(a, backend, requires_grad=True) for a in sequences())
    enc_masks = on_backend(encoder_masks(), backend)
    enc_masks["mask"] = enc_masks.pop("src_mask")
    dec_masks = on_backend(decoder_masks(), backend)
    check_grad(lambda x, y, *params: decoder(y, encoder(x, **enc_masks), **dec_masks),
               [src, tgt, *encoder.parameters(), *decoder.parameters()], fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", [dict(), dict(norm_first=True, activation="gelu")], ids=["post-norm-relu", "pre-norm-gelu"])
def test_gradcheck_tiny_transformer(backend, options):
    model = randomize(tiny_transformer(backend, **options))
    src, tgt = (tensor(a, backend, requires_grad=True) for a in sequences())
    masks = on_backend(transformer_masks(), backend)
    check_grad(lambda x, y, *params: model(x, y, **masks), [src, tgt, *model.parameters()])


# -- laws -------------------------------------------------------------------------------

CAUSAL_MODELS = ["decoder_layer", "decoder", "transformer"]


def causal_model(backend, kind, norm_first, seed):
    if kind == "decoder_layer":
        model = decoder_layer(backend, norm_first=norm_first)
        return randomize(model, seed), lambda src, tgt, **masks: model(tgt, src, **masks)
    if kind == "decoder":
        model = build(backend, TransformerDecoder, decoder_layer(backend, norm_first=norm_first), 2)
        return randomize(model, seed), lambda src, tgt, **masks: model(tgt, src, **masks)
    model = tiny_transformer(backend, norm_first=norm_first)
    return randomize(model, seed), model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", CAUSAL_MODELS)
@pytest.mark.parametrize("how", ["tgt_is_causal", "generate_square_subsequent_mask"])
@settings(deadline=None)
@given(data=st.data())
def test_a_later_target_token_never_changes_an_earlier_output(backend, kind, how, data):
    t = data.draw(st.integers(2, 5))
    changed_from = data.draw(st.integers(1, t - 1))
    _, run = causal_model(backend, kind, data.draw(st.booleans()), data.draw(st.integers(0, 99)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    src, tgt = rng.standard_normal((B, S, D)), rng.standard_normal((B, t, D))
    tgt_changed = tgt.copy()
    tgt_changed[:, changed_from:] = data.draw(st.sampled_from([1.0, 1e3])) * rng.standard_normal((B, t - changed_from, D))
    masks = dict(tgt_is_causal=True) if how == "tgt_is_causal" else dict(tgt_mask=causal(t, backend))
    out = run(tensor(src, backend), tensor(tgt, backend), **masks).numpy()
    out_changed = run(tensor(src, backend), tensor(tgt_changed, backend), **masks).numpy()
    np.testing.assert_allclose(out_changed[:, :changed_from], out[:, :changed_from], rtol=1e-12, atol=1e-13)
    assert not np.allclose(out_changed[:, changed_from:], out[:, changed_from:])   # the law is not vacuous


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_a_padded_source_never_changes_the_output(backend, data):
    """Each sequence of a padded batch (source padding of any content, up to +-1e6, masked by
    src_key_padding_mask and memory_key_padding_mask) gives the output it gives alone."""
    b, t, total = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    lengths = data.draw(st.lists(st.integers(1, total - 1), min_size=b, max_size=b))
    model = randomize(tiny_transformer(backend, norm_first=data.draw(st.booleans())), seed=data.draw(st.integers(0, 99)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    src, tgt = rng.standard_normal((b, total, D)), rng.standard_normal((b, t, D))
    scale = data.draw(st.floats(-1e6, 1e6))
    for i, length in enumerate(lengths):
        src[i, length:] = scale * rng.uniform(-1.0, 1.0, (total - length, D))
    src_padding = tensor(np.arange(total) >= np.array(lengths)[:, None], backend)      # (B, S)
    tgt_mask = causal(t, backend)
    out = model(tensor(src, backend), tensor(tgt, backend), tgt_mask=tgt_mask,
                src_key_padding_mask=src_padding, memory_key_padding_mask=src_padding).numpy()
    for i, length in enumerate(lengths):
        alone = model(tensor(src[i:i + 1, :length], backend), tensor(tgt[i:i + 1], backend), tgt_mask=tgt_mask)
        np.testing.assert_allclose(out[i], alone.numpy()[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_load_state_dict_of_state_dict_round_trips_exactly(backend, data):
    nhead, layers = data.draw(st.sampled_from([1, 2, 4])), data.draw(st.integers(1, 2))
    options = dict(norm_first=data.draw(st.booleans()), activation=data.draw(st.sampled_from(["relu", "gelu"])),
                   bias=data.draw(st.booleans()), dtype=data.draw(st.sampled_from(["float32", "float64"])))
    source = build(backend, Transformer, D, nhead, layers, layers, F, dropout=0.0, seed=data.draw(st.integers(0, 99)), **options)
    target = build(backend, Transformer, D, nhead, layers, layers, F, dropout=0.0, seed=100, **options)
    state = source.state_dict()
    target.load_state_dict(state)
    loaded = target.state_dict()
    assert list(loaded) == list(state)
    for name, array in state.items():
        assert loaded[name].dtype == array.dtype == np.dtype(options["dtype"]) and np.array_equal(loaded[name], array), name
    src, tgt = (tensor(a.astype(options["dtype"]), backend) for a in sequences())
    np.testing.assert_array_equal(target(src, tgt).numpy(), source(src, tgt).numpy())


# -- PyTorch ------------------------------------------------------------------------------

def torch_randomized(torch, module, dtype, seed=0):
    """A torch module in ``dtype`` with random parameters (as ``randomize``)."""
    module = module.to(getattr(torch, dtype))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype) * 1.6 - 0.8)
    return module


def torch_masks(torch, masks, dtype):
    """The masks as torch tensors, all additive (a boolean mask as 0 / -inf): torch deprecates
    mixing boolean and float masks in one call; minigrad gets the originals."""
    return {k: torch.from_numpy(np.where(v, -np.inf, 0.0).astype(dtype) if v.dtype == bool else v.astype(dtype))
            for k, v in masks.items()}


def compare_with_torch(torch, theirs, ours, backend, dtype, inputs, masks, call=None):
    """Load ``theirs`` (torch) into ``ours``; run both on ``inputs`` (NumPy) with ``masks``;
    backpropagate one random upstream gradient; compare output, input and parameter gradients."""
    call = call or (lambda module, xs, kw: module(*xs, **kw))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xs_t = [torch.tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    xs_m = [tensor(a.astype(dtype), backend, requires_grad=True) for a in inputs]
    out_t = call(theirs, xs_t, torch_masks(torch, masks, dtype))
    out_m = call(ours, xs_m, on_backend(masks, backend, dtype))
    gy = np.random.default_rng(5).standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.from_numpy(gy))
    out_m.backward(tensor(gy, backend))
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), **TOL[dtype], err_msg="output")
    for k, (x_t, x_m) in enumerate(zip(xs_t, xs_m)):
        np.testing.assert_allclose(to_numpy(x_m.grad), x_t.grad.numpy(), **TOL[dtype], err_msg=f"grad of input {k}")
    params_t, params_m = dict(theirs.named_parameters()), dict(ours.named_parameters())
    assert list(params_m) == list(params_t)
    for name, p in params_t.items():
        np.testing.assert_allclose(to_numpy(params_m[name].grad), p.grad.numpy(), **TOL[dtype], err_msg=f"grad of {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_encoder_layer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch_randomized(torch, torch.nn.TransformerEncoderLayer(D, NHEAD, F, 0.0, batch_first=True, **options), dtype)
    compare_with_torch(torch, theirs, encoder_layer(backend, dtype=dtype, **options), backend, dtype,
                       sequences()[:1], encoder_masks())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_decoder_layer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch_randomized(torch, torch.nn.TransformerDecoderLayer(D, NHEAD, F, 0.0, batch_first=True, **options), dtype)
    src, tgt = sequences()
    compare_with_torch(torch, theirs, decoder_layer(backend, dtype=dtype, **options), backend, dtype,
                       [tgt, src], decoder_masks())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_stacks_match_pytorch(backend, dtype, norm_first):
    torch = pytest.importorskip("torch")
    layer_t = torch.nn.TransformerEncoderLayer(D, NHEAD, F, 0.0, batch_first=True, norm_first=norm_first)
    encoder_t = torch_randomized(torch, torch.nn.TransformerEncoder(layer_t, 2, torch.nn.LayerNorm(D), enable_nested_tensor=False), dtype)
    with mg.use_backend(backend):
        norm = LayerNorm(D)
    encoder_m = build(backend, TransformerEncoder, encoder_layer(backend, norm_first=norm_first), 2, norm, dtype=dtype)
    masks = encoder_masks()
    masks["mask"] = masks.pop("src_mask")
    compare_with_torch(torch, encoder_t, encoder_m, backend, dtype, sequences()[:1], masks)

    layer_t = torch.nn.TransformerDecoderLayer(D, NHEAD, F, 0.0, batch_first=True, norm_first=norm_first)
    decoder_t = torch_randomized(torch, torch.nn.TransformerDecoder(layer_t, 2), dtype)
    decoder_m = build(backend, TransformerDecoder, decoder_layer(backend, norm_first=norm_first), 2, dtype=dtype)
    src, tgt = sequences()
    compare_with_torch(torch, decoder_t, decoder_m, backend, dtype, [tgt, src], decoder_masks())


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")    # torch's note on pre-norm
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", [dict(), dict(norm_first=True, activation="gelu")], ids=["post-norm-relu", "pre-norm-gelu"])
def test_transformer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch_randomized(torch, torch.nn.Transformer(D, NHEAD, 1, 1, F, 0.0, batch_first=True, **options), dtype)
    masks = dict(transformer_masks(), src_mask=encoder_masks()["src_mask"], memory_mask=decoder_masks()["memory_mask"])
    compare_with_torch(torch, theirs, tiny_transformer(backend, dtype=dtype, **options), backend, dtype,
                       list(sequences()), masks)


@pytest.mark.parametrize("backend", BACKENDS)
def test_length_first_transformer_matches_pytorch(backend):
    torch = pytest.importorskip("torch")
    theirs = torch_randomized(torch, torch.nn.Transformer(D, NHEAD, 1, 1, F, 0.0), "float64")  # torch's batch_first=False
    compare_with_torch(torch, theirs, tiny_transformer(backend, batch_first=False), backend, "float64",
                       [a.swapaxes(0, 1) for a in sequences()], transformer_masks())


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_state_dict_names_and_shapes_are_pytorchs(bias, norm_first):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Transformer(D, NHEAD, 2, 2, F, bias=bias, norm_first=norm_first, batch_first=True).state_dict()
    ours = tiny_transformer("numpy", layers=2, bias=bias, norm_first=norm_first, dtype="float32").state_dict()
    assert list(ours) == list(theirs)
    assert "encoder.layers.0.self_attn.in_proj_weight" in ours and "decoder.layers.1.multihead_attn.out_proj.weight" in ours
    assert all(ours[k].shape == tuple(v.shape) for k, v in theirs.items())


@pytest.mark.parametrize("size", [1, 2, 5])
def test_generate_square_subsequent_mask_equals_pytorchs(size):
    torch = pytest.importorskip("torch")
    ours = Transformer.generate_square_subsequent_mask(size)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(size).numpy()
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), theirs)
