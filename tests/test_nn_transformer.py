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
# float32 gradients against torch: atol 5e-6, not 1e-6. A parameter's gradient sums B * T
# terms of size ~1 that cancel (a LayerNorm gain's gradient of 0.024 from terms of ~1), so
# float32 rounding reaches a few 1e-6 in absolute terms: measured against the float64
# gradient, torch's own float32 error is up to 2.2e-6 in the decoder layer (minigrad's 1.1e-6).
GRAD_TOL = dict(TOL, float32=dict(rtol=1e-5, atol=5e-6))
LAYER_OPTIONS = [dict(norm_first=n, activation=a) for n in (False, True) for a in ("relu", "gelu")]
LAYER_IDS = [f"{'pre' if o['norm_first'] else 'post'}-norm-{o['activation']}" for o in LAYER_OPTIONS]
TRANSFORMER_OPTIONS = [dict(), dict(norm_first=True, activation="gelu")]
TRANSFORMER_IDS = ["post-norm-relu", "pre-norm-gelu"]


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
# Element-wise: the tiny Transformer has 448 parameters, two forwards of ~1 ms each per
# element, so only the two-layer stacks (~800 parameters, two models) use fast_mode.

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
    encoder = build(backend, TransformerEncoder, encoder_layer(backend, norm_first=norm_first), 2, norm)
    decoder = build(backend, TransformerDecoder, decoder_layer(backend, norm_first=norm_first), 2)
    encoder, decoder = randomize(encoder), randomize(decoder, seed=8)
    src, tgt = (tensor(a, backend, requires_grad=True) for a in sequences())
    enc_masks = on_backend(encoder_masks(), backend)
    enc_masks["mask"] = enc_masks.pop("src_mask")
    dec_masks = on_backend(decoder_masks(), backend)
    check_grad(lambda x, y, *params: decoder(y, encoder(x, **enc_masks), **dec_masks),
               [src, tgt, *encoder.parameters(), *decoder.parameters()], fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", TRANSFORMER_OPTIONS, ids=TRANSFORMER_IDS)
def test_gradcheck_tiny_transformer(backend, options):
    model = randomize(tiny_transformer(backend, **options))
    src, tgt = (tensor(a, backend, requires_grad=True) for a in sequences())
    masks = on_backend(transformer_masks(), backend)
    check_grad(lambda x, y, *params: model(x, y, **masks), [src, tgt, *model.parameters()])


# -- laws -------------------------------------------------------------------------------

CAUSAL_MODELS = ["decoder_layer", "decoder", "transformer"]


def causal_model(backend, kind, norm_first, seed):
    """A function (src, tgt, **masks) -> output of a random decoder layer, decoder or Transformer."""
    if kind == "transformer":
        return randomize(tiny_transformer(backend, norm_first=norm_first), seed)
    model = decoder_layer(backend, norm_first=norm_first)
    if kind == "decoder":
        model = build(backend, TransformerDecoder, model, 2)
    randomize(model, seed)
    return lambda src, tgt, **masks: model(tgt, src, **masks)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", CAUSAL_MODELS)
@pytest.mark.parametrize("how", ["tgt_is_causal", "generate_square_subsequent_mask"])
@settings(deadline=None)
@given(data=st.data())
def test_a_later_target_token_never_changes_an_earlier_output(backend, kind, how, data):
    t = data.draw(st.integers(2, 5))
    changed_from = data.draw(st.integers(1, t - 1))
    run = causal_model(backend, kind, data.draw(st.booleans()), data.draw(st.integers(0, 99)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    src, tgt = rng.standard_normal((B, S, D)), rng.standard_normal((B, t, D))
    tgt_changed = tgt.copy()
    scale = data.draw(st.sampled_from([1.0, 1e3]))
    tgt_changed[:, changed_from:] = scale * rng.standard_normal((B, t - changed_from, D))
    # the mask in its default dtype, float32, as a user makes it for this float64 model
    masks = dict(tgt_is_causal=True) if how == "tgt_is_causal" else \
        dict(tgt_mask=Transformer.generate_square_subsequent_mask(t, backend=backend))
    out = run(tensor(src, backend), tensor(tgt, backend), **masks).numpy()
    out_changed = run(tensor(src, backend), tensor(tgt_changed, backend), **masks).numpy()
    np.testing.assert_allclose(out_changed[:, :changed_from], out[:, :changed_from],
                               rtol=1e-12, atol=1e-13)
    assert not np.allclose(out_changed[:, changed_from:], out[:, changed_from:])   # not vacuous


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_a_padded_source_never_changes_the_output(backend, data):
    """Each sequence of a padded batch (source padding of any content, up to +-1e6, masked by
    src_key_padding_mask and memory_key_padding_mask) gives the output it gives alone."""
    b, t, total = (data.draw(st.integers(*bounds)) for bounds in ((1, 3), (1, 4), (2, 5)))
    lengths = data.draw(st.lists(st.integers(1, total - 1), min_size=b, max_size=b))
    model = tiny_transformer(backend, norm_first=data.draw(st.booleans()))
    randomize(model, seed=data.draw(st.integers(0, 99)))
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
        alone = model(tensor(src[i:i + 1, :length], backend), tensor(tgt[i:i + 1], backend),
                      tgt_mask=tgt_mask)
        np.testing.assert_allclose(out[i], alone.numpy()[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_load_state_dict_of_state_dict_round_trips_exactly(backend, data):
    nhead, layers = data.draw(st.sampled_from([1, 2, 4])), data.draw(st.integers(1, 2))
    options = dict(norm_first=data.draw(st.booleans()), bias=data.draw(st.booleans()),
                   activation=data.draw(st.sampled_from(["relu", "gelu"])),
                   dtype=data.draw(st.sampled_from(["float32", "float64"])))
    args = (backend, Transformer, D, nhead, layers, layers, F)
    source = build(*args, dropout=0.0, seed=data.draw(st.integers(0, 99)), **options)
    target = build(*args, dropout=0.0, seed=100, **options)
    state = source.state_dict()
    target.load_state_dict(state)
    loaded = target.state_dict()
    assert list(loaded) == list(state)
    for name, array in state.items():
        assert loaded[name].dtype == array.dtype == np.dtype(options["dtype"]), name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    src, tgt = (tensor(a.astype(options["dtype"]), backend) for a in sequences())
    np.testing.assert_array_equal(target(src, tgt).numpy(), source(src, tgt).numpy())


# -- PyTorch ------------------------------------------------------------------------------

def torch_randomized(torch, module, dtype, seed=0):
    """A torch module in ``dtype`` with random parameters (as ``randomize``)."""
    module = module.to(getattr(torch, dtype))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=generator, dtype=torch.float64) * 1.6 - 0.8)
    return module


def torch_masks(torch, masks, dtype):
    """The masks as torch tensors, all additive (a boolean mask as 0 / -inf): torch deprecates
    mixing boolean and float masks in one call; minigrad gets the originals."""
    additive = {k: np.where(v, -np.inf, 0.0) if v.dtype == bool else v for k, v in masks.items()}
    return {k: torch.from_numpy(v.astype(dtype)) for k, v in additive.items()}


def compare_with_torch(torch, theirs, ours, backend, dtype, inputs, masks):
    """Load ``theirs`` (torch) into ``ours``; run both on ``inputs`` (NumPy) with ``masks``;
    backpropagate one random upstream gradient; compare output, input and parameter gradients."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    xs_t = [torch.tensor(a.astype(dtype), requires_grad=True) for a in inputs]
    xs_m = [tensor(a.astype(dtype), backend, requires_grad=True) for a in inputs]
    out_t = theirs(*xs_t, **torch_masks(torch, masks, dtype))
    out_m = ours(*xs_m, **on_backend(masks, backend, dtype))
    gy = np.random.default_rng(5).standard_normal(tuple(out_t.shape)).astype(dtype)
    out_t.backward(torch.from_numpy(gy))
    out_m.backward(tensor(gy, backend))
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), **TOL[dtype], err_msg="output")
    grads_t = [x.grad.numpy() for x in xs_t] + [p.grad.numpy() for p in theirs.parameters()]
    grads_m = [to_numpy(x.grad) for x in xs_m] + [to_numpy(p.grad) for p in ours.parameters()]
    names = [f"input {k}" for k in range(len(xs_t))] + [name for name, _ in theirs.named_parameters()]
    assert [name for name, _ in ours.named_parameters()] == names[len(xs_t):]
    for name, g_t, g_m in zip(names, grads_t, grads_m):
        np.testing.assert_allclose(g_m, g_t, **GRAD_TOL[dtype], err_msg=f"gradient of {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_encoder_layer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.TransformerEncoderLayer(D, NHEAD, F, 0.0, batch_first=True, **options)
    theirs = torch_randomized(torch, theirs, dtype)
    compare_with_torch(torch, theirs, encoder_layer(backend, dtype=dtype, **options), backend, dtype,
                       sequences()[:1], encoder_masks())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=LAYER_IDS)
def test_decoder_layer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.TransformerDecoderLayer(D, NHEAD, F, 0.0, batch_first=True, **options)
    theirs = torch_randomized(torch, theirs, dtype)
    src, tgt = sequences()
    compare_with_torch(torch, theirs, decoder_layer(backend, dtype=dtype, **options), backend, dtype,
                       [tgt, src], decoder_masks())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_stacks_match_pytorch(backend, dtype, norm_first):
    torch = pytest.importorskip("torch")
    layer_t = torch.nn.TransformerEncoderLayer(D, NHEAD, F, 0.0, batch_first=True, norm_first=norm_first)
    encoder_t = torch.nn.TransformerEncoder(layer_t, 2, torch.nn.LayerNorm(D),
                                            enable_nested_tensor=False)
    encoder_t = torch_randomized(torch, encoder_t, dtype)
    with mg.use_backend(backend):
        norm = LayerNorm(D)
    layer_m = encoder_layer(backend, norm_first=norm_first)
    encoder_m = build(backend, TransformerEncoder, layer_m, 2, norm, dtype=dtype)
    masks = encoder_masks()
    masks["mask"] = masks.pop("src_mask")
    compare_with_torch(torch, encoder_t, encoder_m, backend, dtype, sequences()[:1], masks)

    layer_t = torch.nn.TransformerDecoderLayer(D, NHEAD, F, 0.0, batch_first=True, norm_first=norm_first)
    decoder_t = torch_randomized(torch, torch.nn.TransformerDecoder(layer_t, 2), dtype)
    layer_m = decoder_layer(backend, norm_first=norm_first)
    decoder_m = build(backend, TransformerDecoder, layer_m, 2, dtype=dtype)
    src, tgt = sequences()
    compare_with_torch(torch, decoder_t, decoder_m, backend, dtype, [tgt, src], decoder_masks())


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")    # torch's note on pre-norm
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", TRANSFORMER_OPTIONS, ids=TRANSFORMER_IDS)
def test_transformer_matches_pytorch(backend, dtype, options):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Transformer(D, NHEAD, 1, 1, F, 0.0, batch_first=True, **options)
    theirs = torch_randomized(torch, theirs, dtype)
    masks = dict(transformer_masks(), src_mask=encoder_masks()["src_mask"],
                 memory_mask=decoder_masks()["memory_mask"])
    compare_with_torch(torch, theirs, tiny_transformer(backend, dtype=dtype, **options), backend, dtype,
                       list(sequences()), masks)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("backend", BACKENDS)
def test_length_first_transformer_matches_pytorch(backend):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Transformer(D, NHEAD, 1, 1, F, 0.0)                 # torch's default: length first
    theirs = torch_randomized(torch, theirs, "float64")
    compare_with_torch(torch, theirs, tiny_transformer(backend, batch_first=False), backend, "float64",
                       [a.swapaxes(0, 1) for a in sequences()], transformer_masks())


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_state_dict_names_and_shapes_are_pytorchs(bias, norm_first):
    torch = pytest.importorskip("torch")
    options = dict(bias=bias, norm_first=norm_first)
    theirs = torch.nn.Transformer(D, NHEAD, 2, 2, F, batch_first=True, **options).state_dict()
    ours = tiny_transformer("numpy", layers=2, dtype="float32", **options).state_dict()
    assert list(ours) == list(theirs)
    assert {"encoder.layers.0.self_attn.in_proj_weight", "encoder.norm.weight", "decoder.norm.weight",
            "decoder.layers.1.multihead_attn.out_proj.weight"} <= set(ours)
    assert all(ours[k].shape == tuple(v.shape) for k, v in theirs.items())


@pytest.mark.parametrize("size", [1, 2, 5])
def test_generate_square_subsequent_mask_equals_pytorchs(size):
    torch = pytest.importorskip("torch")
    ours = Transformer.generate_square_subsequent_mask(size)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(size).numpy()
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), theirs)


# -- initialization, dropout, docstring shapes ----------------------------------------------

def assert_uniform_within(array, bound, name=""):
    """All of ``array`` in [-bound, bound], and reaching near both ends (not a narrower law)."""
    assert np.abs(array).max() <= bound, name
    assert array.max() > 0.9 * bound and array.min() < -0.9 * bound, name


def xavier_bound(shape):
    fan_out, fan_in = shape
    return math.sqrt(6.0 / (fan_in + fan_out))


@pytest.mark.parametrize("backend", BACKENDS)
def test_transformer_initialization_is_pytorchs(backend):
    """Every matrix Xavier-uniform (Transformer._reset_parameters); biases as their layers
    left them: in_proj_bias and out_proj.bias 0, Linear biases U(+-1/sqrt(fan_in)), LayerNorm 1 and 0."""
    d_model, ff = 16, 32
    model = build(backend, Transformer, d_model, 4, 1, 1, ff, dtype="float32")
    for name, p in model.named_parameters():
        array = p.numpy()
        assert array.dtype == np.float32, name
        if p.ndim == 2:
            assert_uniform_within(array, xavier_bound(array.shape), name)
        elif "norm" in name:
            assert np.all(array == (1.0 if name.endswith("weight") else 0.0)), name
        elif "proj" in name:
            assert np.all(array == 0.0), name
        else:                                            # linear1.bias, linear2.bias
            assert np.abs(array).max() <= 1.0 / math.sqrt(d_model if "linear1" in name else ff), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_initialization_is_pytorchs(backend):
    """A layer on its own keeps each part's own init (PyTorch's): Xavier for in_proj_weight,
    Linear's U(+-1/sqrt(fan_in)) for out_proj, linear1 and linear2."""
    d_model, ff = 32, 64
    layer = build(backend, TransformerDecoderLayer, d_model, 4, ff, dtype="float32")
    for attention in (layer.self_attn, layer.multihead_attn):
        assert_uniform_within(attention.in_proj_weight.numpy(), xavier_bound((3 * d_model, d_model)))
        assert_uniform_within(attention.out_proj.weight.numpy(), 1.0 / math.sqrt(d_model))
    assert_uniform_within(layer.linear1.weight.numpy(), 1.0 / math.sqrt(d_model))
    assert_uniform_within(layer.linear2.weight.numpy(), 1.0 / math.sqrt(ff))


DROPOUT_MODELS = {   # kind: (make with dropout p, run on src and tgt)
    "encoder_layer": (encoder_layer, lambda m, src, tgt, mask: m(src)),
    "decoder_layer": (decoder_layer, lambda m, src, tgt, mask: m(tgt, src, tgt_mask=mask)),
    "transformer": (tiny_transformer, lambda m, src, tgt, mask: m(src, tgt, tgt_mask=mask)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", DROPOUT_MODELS)
def test_dropout_is_off_in_eval_and_on_in_training(backend, kind):
    make, forward = DROPOUT_MODELS[kind]
    src, tgt = (tensor(a, backend) for a in sequences())

    def run(module):
        return forward(module, src, tgt, causal(T, backend))

    plain, dropping = make(backend, dropout=0.0), make(backend, dropout=0.3)
    dropping.load_state_dict(randomize(plain).state_dict())
    expected = run(plain).numpy()
    np.testing.assert_array_equal(run(dropping.eval()).numpy(), expected)
    mg.manual_seed(1)
    assert not np.allclose(run(dropping.train()).numpy(), expected)
    np.testing.assert_array_equal(run(plain.train()).numpy(), expected)      # p = 0 trains unchanged


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_first", [True, False])
def test_docstring_shapes(backend, batch_first):
    model = tiny_transformer(backend, batch_first=batch_first)
    src, tgt = sequences()
    if not batch_first:
        src, tgt = src.swapaxes(0, 1), tgt.swapaxes(0, 1)                          # (S, B, D), (T, B, D)
    src, tgt = tensor(src, backend), tensor(tgt, backend)
    target_shape, source_shape = ((B, T, D), (B, S, D)) if batch_first else ((T, B, D), (S, B, D))
    assert model(src, tgt).shape == target_shape
    encoder, decoder = model.encoder.layers[0], model.decoder.layers[0]
    memory = encoder(src)
    assert memory.shape == source_shape
    assert decoder(tgt, memory).shape == target_shape
    for layer in (encoder, decoder):
        assert layer.linear1.weight.shape == (F, D) and layer.linear2.weight.shape == (D, F)
        assert layer.self_attn.in_proj_weight.shape == (3 * D, D)
        assert layer.self_attn.in_proj_bias.shape == (3 * D,)
        assert layer.norm1.weight.shape == layer.norm2.weight.shape == (D,)
    assert decoder.multihead_attn.in_proj_weight.shape == (3 * D, D)
    assert decoder.norm3.weight.shape == (D,)
    assert Transformer.generate_square_subsequent_mask(T, backend=backend).shape == (T, T)


@pytest.mark.parametrize("backend", BACKENDS)
def test_length_first_equals_batch_first_on_swapped_inputs(backend):
    batch_first, length_first = tiny_transformer(backend), tiny_transformer(backend, batch_first=False)
    length_first.load_state_dict(randomize(batch_first).state_dict())
    src, tgt = sequences()
    masks = on_backend(transformer_masks(), backend)
    expected = batch_first(tensor(src, backend), tensor(tgt, backend), **masks).numpy()
    out = length_first(tensor(src.swapaxes(0, 1), backend), tensor(tgt.swapaxes(0, 1), backend), **masks)
    np.testing.assert_allclose(out.numpy(), expected.swapaxes(0, 1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_activation_may_be_a_function(backend):
    by_name = randomize(encoder_layer(backend, activation="gelu"))
    by_function = encoder_layer(backend, activation=mg.nn.functional.gelu)
    by_function.load_state_dict(by_name.state_dict())
    relu = encoder_layer(backend, activation="relu")
    relu.load_state_dict(by_name.state_dict())
    src = tensor(sequences()[0], backend)
    np.testing.assert_array_equal(by_function(src).numpy(), by_name(src).numpy())
    assert not np.allclose(relu(src).numpy(), by_name(src).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_generate_square_subsequent_mask_is_zero_on_and_below_the_diagonal(backend):
    mask = Transformer.generate_square_subsequent_mask(4, dtype="float64", backend=backend)
    assert mask.backend == backend and mask.dtype == np.float64
    above = np.triu(np.ones((4, 4), dtype=bool), k=1)
    np.testing.assert_array_equal(mask.numpy(), np.where(above, -np.inf, 0.0))


# -- bad input ------------------------------------------------------------------------------

def test_unknown_activation_is_refused():
    message = r"activation must be one of \['gelu', 'relu'\] or a function, got 'tanh'"
    with pytest.raises(ValueError, match=message):
        TransformerEncoderLayer(D, NHEAD, F, activation="tanh")


def test_d_model_not_divisible_by_nhead_is_refused():
    with pytest.raises(ValueError, match=r"embed_dim \(4\) must be divisible by num_heads \(3\)"):
        Transformer(D, 3, 1, 1, F)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_first, src_shape, tgt_shape, message", [
    (True, (B, S, D), (B + 1, T, D), r"one batch size, got src \(2, 4, 4\) and tgt \(3, 3, 4\)"),
    (False, (S, B, D), (T, B + 1, D), r"got src \(4, 2, 4\) and tgt \(3, 3, 4\) \(batch_first=False\)"),
    (True, (B, S, D + 1), (B, T, D), r"d_model=4, got src \(2, 4, 5\) and tgt \(2, 3, 4\)"),
    (True, (B, S, D), (B, T, D - 1), r"d_model=4, got src \(2, 4, 4\) and tgt \(2, 3, 3\)"),
])
def test_transformer_bad_input_names_expected_and_got(backend, batch_first, src_shape, tgt_shape,
                                                      message):
    model = tiny_transformer(backend, batch_first=batch_first)
    with pytest.raises(ValueError, match=message):
        model(tensor(np.zeros(src_shape), backend), tensor(np.zeros(tgt_shape), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_bad_mask_shapes_are_refused(backend):
    src, tgt = (tensor(a, backend) for a in sequences())
    with pytest.raises(ValueError, match=r"expected key_padding_mask of shape \(2, 4\), got \(2, 3\)"):
        encoder_layer(backend)(src, src_key_padding_mask=tensor(np.zeros((B, S - 1), bool), backend))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\) or \(4, 3, 3\), got \(3, 4\)"):
        decoder_layer(backend)(tgt, src, tgt_mask=tensor(np.zeros((T, S), bool), backend))


# -- sinusoidal positional encoding --------------------------------------------------------

def paper_pe(length, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i / d_model)), PE(pos, 2i + 1) = cos(same angle),
    evaluated element by element (Vaswani et al., 2017, §3.5)."""
    pe = np.zeros((length, d_model))
    for pos in range(length):
        for dim in range(d_model):
            angle = pos / 10000.0 ** (2 * (dim // 2) / d_model)
            pe[pos, dim] = math.sin(angle) if dim % 2 == 0 else math.cos(angle)
    return pe


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("length, d_model", [(1, 1), (5, 2), (7, 3), (50, 8), (20, 7), (100, 16)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_positional_encoding_table_is_the_papers_formula(backend, length, d_model, dtype):
    pe = sinusoidal_positional_encoding(length, d_model, dtype=dtype, backend=backend)
    assert pe.shape == (length, d_model) and pe.dtype == np.dtype(dtype) and pe.backend == backend
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pe.numpy(), paper_pe(length, d_model), **tol)


def test_positional_encoding_table_defaults_to_float32_on_the_current_backend():
    with mg.use_backend("strict"):
        pe = sinusoidal_positional_encoding(3, 4)
    assert pe.dtype == np.float32 and pe.backend == "strict"


def make_pe(backend, d_model=6, max_len=10, dropout=0.0):
    with mg.use_backend(backend):
        return PositionalEncoding(d_model, max_len=max_len, dropout=dropout).double()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start, length", [(0, 1), (0, 4), (3, 4), (6, 4), (9, 1)])
def test_positional_encoding_adds_pe_from_start(backend, start, length):
    pe = make_pe(backend)
    x = np.random.default_rng(0).standard_normal((B, length, 6))
    y = pe(tensor(x, backend), start=start)
    assert y.shape == (B, length, 6) and y.dtype == np.float64                    # (B, T, D)
    np.testing.assert_array_equal(y.numpy(), x + pe.pe.numpy()[start:start + length])
    # the table is built in float32 (see the next test): float32 accuracy
    np.testing.assert_allclose(y.numpy(), x + paper_pe(10, 6)[start:start + length],
                               rtol=1e-6, atol=1e-7)


def test_positional_encoding_in_float64_has_float64_accuracy():
    pe = PositionalEncoding(6, max_len=10).double()
    np.testing.assert_allclose(pe.pe.numpy(), paper_pe(10, 6), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_encoding_keeps_float32(backend):
    with mg.use_backend(backend):
        pe = PositionalEncoding(4, max_len=8)
    assert pe.pe.shape == (8, 4)                                                   # (max_len, D)
    assert pe(tensor(np.zeros((B, 3, 4), np.float32), backend)).dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_encoding_gradient_is_the_identity(backend):
    pe = make_pe(backend)
    x = tensor(np.random.default_rng(0).standard_normal((B, 3, 6)), backend, requires_grad=True)
    check_grad(lambda x: pe(x, start=2), [x])


def test_positional_encoding_table_is_a_buffer_not_in_state_dict():
    pe = PositionalEncoding(4, max_len=8)
    assert dict(pe.named_buffers()).keys() == {"pe"} and list(pe.parameters()) == []
    assert pe.state_dict() == {}
    pe.load_state_dict({})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start, length, message", [
    (0, 11, r"positions 0\.\.10 exceed max_len=10"), (8, 3, r"positions 8\.\.10 exceed max_len=10"),
    (10, 1, r"positions 10\.\.10 exceed max_len=10")])
def test_positional_encoding_refuses_positions_past_max_len(backend, start, length, message):
    with pytest.raises(ValueError, match=message):
        make_pe(backend)(tensor(np.zeros((B, length, 6)), backend), start=start)


def test_positional_encoding_refuses_a_negative_start():
    with pytest.raises(ValueError, match="start"):
        PositionalEncoding(4, max_len=8)(mg.Tensor(np.zeros((B, 1, 4), np.float32)), start=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_encoding_refuses_the_wrong_width(backend):
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., T, 6\), got \(2, 3, 5\)"):
        make_pe(backend)(tensor(np.zeros((B, 3, 5)), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_encoding_dropout_in_training_only(backend):
    p = 0.5
    pe = make_pe(backend, dropout=p)
    x = np.random.default_rng(0).standard_normal((B, 5, 6))
    expected = x + pe.pe.numpy()[:5]
    np.testing.assert_array_equal(pe.eval()(tensor(x, backend)).numpy(), expected)
    mg.manual_seed(0)
    y = pe.train()(tensor(x, backend)).numpy()
    kept = y != 0.0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(y[kept], expected[kept] / (1 - p), rtol=1e-12)
