"""MultiheadAttention (minigrad/nn/multihead_attention.py).

Its three input-projection paths, each tested: self-attention (query is key is
value: one fused (3E, E) matmul), encoder-decoder attention (key is value: one
(2E, E) matmul for K and V) and three distinct tensors (three matmuls).

- float64 gradient checks w.r.t. query/key/value and every parameter, with
  key_padding_mask and attn_mask (boolean and float, (T, S) and (B * h, T, S)),
  the head-averaged and per-head weights checked as a second output;
- laws (hypothesis): padded keys of any content change nothing at the real keys
  and get weight exactly 0; weights are non-negative and their rows sum to 1;
  under is_causal a later query token never changes an earlier output;
- the three paths agree with each other; PyTorch's MultiheadAttention loaded
  into minigrad gives the same outputs, weights and gradients;
- docstring shapes, PyTorch's initialization and names, dropout, bad input.
Every test that touches arrays runs on each backend in BACKENDS.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.autograd import backward
from minigrad.nn import MultiheadAttention
from helpers import BACKENDS, check_grad, tensor

to_numpy = mg.backend.to_numpy

E, H, B, T, S = 4, 2, 2, 3, 4          # embed_dim, heads, batch, target length, source length
PATHS = ["self", "kv", "qkv"]          # query is key is value | key is value | three tensors
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


# -- helpers --------------------------------------------------------------------

def make_mha(backend, embed_dim=E, num_heads=H, dtype="float64", seed=0, **kwargs):
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        mha = MultiheadAttention(embed_dim, num_heads, **kwargs)
    return mha.to(dtype)


def randomize(module, seed=7):
    """Random parameters (the zero biases of the initialization would hide bias bugs)."""
    rng = np.random.default_rng(seed)
    module.load_state_dict({k: rng.uniform(-0.8, 0.8, v.shape) for k, v in module.state_dict().items()})
    return module


def source_length(path):
    return T if path == "self" else S


def input_arrays(path, seed=1, dtype="float64", batch_first=True):
    """The NumPy inputs of one path: [x] | [query, key_and_value] | [query, key, value],
    each (B, L, E), or (L, B, E) when not ``batch_first``."""
    rng = np.random.default_rng(seed)
    lengths = {"self": [T], "kv": [T, S], "qkv": [T, S, S]}[path]
    arrays = [rng.standard_normal((B, n, E)).astype(dtype) for n in lengths]
    return arrays if batch_first else [a.swapaxes(0, 1).copy() for a in arrays]


def attend(mha, path, xs, **kwargs):
    """Call ``mha`` so that the path's projection code runs: "self" passes its one tensor as
    query, key and value; "kv" passes its second as key and value; "qkv" three tensors."""
    if path == "self":
        (x,) = xs
        return mha(x, x, x, **kwargs)
    if path == "kv":
        query, key_value = xs
        return mha(query, key_value, key_value, **kwargs)
    return mha(*xs, **kwargs)


def mask_arrays(kind, s, seed=3):
    """NumPy masks for ``kind`` ("none", "causal", or "+"-joined parts: "key_padding" or
    "float_key_padding", and "bool_TS", "float_TS", "bool_BhTS", "float_BhTS" for attn_mask
    (T, S) or (B * h, T, S)), as a dict of MHA keyword arguments. Key 0 is never masked, so
    every query row keeps a key (a fully masked row is NaN, as in PyTorch)."""
    rng = np.random.default_rng(seed)
    masks = {}
    if "key_padding" in kind:
        key_padding_mask = np.zeros((B, s), dtype=bool)
        key_padding_mask[1, -1] = True                              # batch 1 is one key shorter
        if kind.startswith("float_key_padding"):                    # additive: -inf and offsets
            key_padding_mask = np.where(key_padding_mask, -np.inf, rng.standard_normal((B, s)))
        masks["key_padding_mask"] = key_padding_mask
    if "_TS" in kind or "BhTS" in kind:
        shape = (B * H, T, s) if "BhTS" in kind else (T, s)
        if "bool" in kind:
            attn_mask = rng.random(shape) < 0.4
            attn_mask[..., 0] = False
        else:
            attn_mask = rng.standard_normal(shape)
            attn_mask[(rng.random(shape) < 0.25) & (np.arange(s) > 0)] = -np.inf
        masks["attn_mask"] = attn_mask
    if kind == "causal":
        masks["is_causal"] = True
    return masks


def on_backend(masks, backend):
    return {k: tensor(v, backend) if isinstance(v, np.ndarray) else v for k, v in masks.items()}


def upstream(shape, seed, backend, dtype="float64"):
    """A random upstream gradient, as a backend array (what ``autograd.backward`` takes)."""
    array = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return mg.backend.backend_by_name(backend).from_numpy(array)


# -- gradient checks --------------------------------------------------------------------

# The masks act on the scores, after the projections, so the mask kinds run on the most
# general path (three tensors; the combinations cover key_padding, bool_TS and float_BhTS
# alone) and the combined ones on the other two paths.
COMBINED = ("key_padding+bool_TS", "key_padding+float_BhTS")
GRADCHECK_CASES = ([("qkv", masks) for masks in ("none", "float_TS", "bool_BhTS", *COMBINED, "causal")]
                   + [("self", masks) for masks in (*COMBINED, "causal")]
                   + [("kv", masks) for masks in COMBINED])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path, masks", GRADCHECK_CASES)
def test_gradcheck_output_and_weights_wrt_inputs_and_every_parameter(backend, path, masks):
    mha = randomize(make_mha(backend))
    xs = [tensor(a, backend, requires_grad=True) for a in input_arrays(path)]
    kwargs = on_backend(mask_arrays(masks, source_length(path)), backend)
    # need_weights=True (the default): fn returns (output, head-averaged weights).
    check_grad(lambda *a: attend(mha, path, a[:len(xs)], **kwargs), [*xs, *mha.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", PATHS)
def test_gradcheck_with_per_head_weights(backend, path):
    mha = randomize(make_mha(backend))
    xs = [tensor(a, backend, requires_grad=True) for a in input_arrays(path)]
    kwargs = on_backend(mask_arrays("key_padding+float_BhTS", source_length(path)), backend)
    check_grad(lambda *a: attend(mha, path, a[:len(xs)], average_attn_weights=False, **kwargs),
               [*xs, *mha.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path, options", [(path, dict(bias=False)) for path in PATHS]
                         + [("self", dict(batch_first=False))])
def test_gradcheck_without_weights_output(backend, path, options):
    mha = randomize(make_mha(backend, **options))
    batch_first = options.get("batch_first", True)
    xs = [tensor(a, backend, requires_grad=True) for a in input_arrays(path, batch_first=batch_first)]
    kwargs = on_backend(mask_arrays("key_padding+bool_BhTS", source_length(path)), backend)
    check_grad(lambda *a: attend(mha, path, a[:len(xs)], need_weights=False, **kwargs)[0],
               [*xs, *mha.parameters()])


# -- the three projection paths agree ----------------------------------------------------------

def outputs_and_grads(mha, path, xs_np, backend, kwargs, seed=11):
    """Output, weights, input gradients and parameter gradients (by name) along a random
    upstream gradient for both outputs."""
    mha.zero_grad()
    xs = [tensor(a, backend, requires_grad=True) for a in xs_np]
    out, weights = attend(mha, path, xs, **kwargs)
    backward([out, weights], [upstream(out.shape, seed, backend, out.dtype),
                              upstream(weights.shape, seed + 1, backend, out.dtype)])
    return (out.numpy(), weights.numpy(), [to_numpy(x.grad) for x in xs],
            {name: to_numpy(p.grad) for name, p in mha.named_parameters()})


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_self_attention_equals_three_projections_of_copies(backend):
    mha = randomize(make_mha(backend))
    kwargs = on_backend(mask_arrays("key_padding+float_BhTS", T), backend)
    (x,) = input_arrays("self")
    fused = outputs_and_grads(mha, "self", [x], backend, kwargs)
    kv = outputs_and_grads(mha, "kv", [x, x], backend, kwargs)
    qkv = outputs_and_grads(mha, "qkv", [x, x, x], backend, kwargs)
    for other in (kv, qkv):
        np.testing.assert_allclose(fused[0], other[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fused[1], other[1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fused[2][0], sum(other[2]), rtol=1e-12, atol=1e-14)
        for name, g in fused[3].items():
            np.testing.assert_allclose(g, other[3][name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_key_value_projection_equals_three_projections(backend):
    mha = randomize(make_mha(backend))
    kwargs = on_backend(mask_arrays("key_padding+bool_TS", S), backend)
    query, key_value = input_arrays("kv")
    kv = outputs_and_grads(mha, "kv", [query, key_value], backend, kwargs)
    qkv = outputs_and_grads(mha, "qkv", [query, key_value, key_value], backend, kwargs)
    np.testing.assert_allclose(kv[0], qkv[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kv[2][1], qkv[2][1] + qkv[2][2], rtol=1e-12, atol=1e-14)
    for name, g in kv[3].items():
        np.testing.assert_allclose(g, qkv[3][name], rtol=1e-12, atol=1e-14, err_msg=name)


# -- laws -------------------------------------------------------------------------------

LARGE = st.floats(-1e6, 1e6, allow_nan=False)


def draw_padded_batch(data, path):
    """(arrays of the path, lengths): each batch element has its own number of real keys,
    the keys (and values) after it padding of any content, up to +-1e6."""
    b, t, total = (data.draw(st.integers(*bounds)) for bounds in ((1, 3), (1, 4), (2, 6)))
    lengths = data.draw(st.lists(st.integers(1, total - 1), min_size=b, max_size=b))
    scale = data.draw(LARGE)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    distinct = {"self": 1, "kv": 1, "qkv": 2}[path]
    keys_and_values = [rng.standard_normal((b, total, E)) for _ in range(distinct)]
    for x in keys_and_values:
        for i, length in enumerate(lengths):
            x[i, length:] = scale * rng.uniform(-1.0, 1.0, (total - length, E))
    queries = [] if path == "self" else [rng.standard_normal((b, t, E))]
    return queries + keys_and_values, lengths


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", PATHS)
@settings(deadline=None)
@given(data=st.data())
def test_padded_keys_change_nothing_at_real_keys_and_get_zero_weight(backend, path, data):
    """Each batch element's output and weights equal those of the element alone with only
    its real keys; its padded keys get weight exactly 0 (self-attention: padded positions
    are queries too, and only the real ones are compared)."""
    mha = randomize(make_mha(backend, num_heads=data.draw(st.sampled_from([1, 2, 4]))),
                    seed=data.draw(st.integers(0, 99)))
    xs, lengths = draw_padded_batch(data, path)
    total = xs[-1].shape[1]
    key_padding_mask = np.arange(total) >= np.array(lengths)[:, None]             # (B, S)
    out, weights = attend(mha, path, [tensor(x, backend) for x in xs], average_attn_weights=False,
                          key_padding_mask=tensor(key_padding_mask, backend))
    out, weights = out.numpy(), weights.numpy()                                    # (B, h, T, S)
    for i, length in enumerate(lengths):
        assert np.all(weights[i, :, :, length:] == 0.0)
        alone = [x[i:i + 1, :length] for x in xs]
        if path != "self":
            alone[0] = xs[0][i:i + 1]                                              # all its queries
        ref_out, ref_weights = attend(mha, path, [tensor(x, backend) for x in alone],
                                      average_attn_weights=False)
        rows = ref_out.shape[1]
        np.testing.assert_allclose(out[i, :rows], ref_out.numpy()[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(weights[i, :, :rows, :length], ref_weights.numpy()[0],
                                   rtol=1e-10, atol=1e-14)


def draw_masks(data, b, heads, t, s):
    """Random boolean key_padding_mask (b, s) and attn_mask ((t, s) or (b * h, t, s)),
    with one key (drawn) that neither masks, so every row keeps a key."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    key_padding_mask = rng.random((b, s)) < 0.4
    attn_mask = rng.random(data.draw(st.sampled_from([(t, s), (b * heads, t, s)]))) < 0.4
    kept = data.draw(st.integers(0, s - 1))
    key_padding_mask[:, kept] = attn_mask[..., kept] = False
    return key_padding_mask, attn_mask


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_weights_are_non_negative_rows_sum_to_one_and_masked_keys_get_zero(backend, data):
    heads = data.draw(st.sampled_from([1, 2, 4]))
    b, t, s = (data.draw(st.integers(1, 4)) for _ in range(3))
    scale = data.draw(st.sampled_from([1.0, 10.0, 1e3]))                  # saturated softmax too
    mha = randomize(make_mha(backend, num_heads=heads), seed=data.draw(st.integers(0, 99)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    query, key, value = (scale * rng.standard_normal((b, n, E)) for n in (t, s, s))
    key_padding_mask, attn_mask = draw_masks(data, b, heads, t, s)
    kwargs = dict(key_padding_mask=tensor(key_padding_mask, backend),
                  attn_mask=tensor(attn_mask, backend))
    xs = [tensor(x, backend) for x in (query, key, value)]
    _, per_head = mha(*xs, average_attn_weights=False, **kwargs)
    _, averaged = mha(*xs, **kwargs)
    per_head, averaged = per_head.numpy(), averaged.numpy()                # (B, h, T, S), (B, T, S)
    if attn_mask.ndim == 3:
        attn_mask = attn_mask.reshape(b, heads, t, s)                     # row b * h + i: (b, i)
    masked = key_padding_mask[:, None, None, :] | attn_mask                # broadcasts to (B, h, T, S)
    assert np.all(per_head >= 0.0)
    assert np.all(per_head[np.broadcast_to(masked, per_head.shape)] == 0.0)
    np.testing.assert_allclose(per_head.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(averaged, per_head.mean(axis=1), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(data=st.data())
def test_is_causal_a_later_token_never_changes_an_earlier_output(backend, data):
    t = data.draw(st.integers(2, 5))
    changed_from = data.draw(st.integers(1, t - 1))
    mha = randomize(make_mha(backend), seed=data.draw(st.integers(0, 99)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((B, t, E))
    x_changed = x.copy()
    scale = data.draw(st.sampled_from([1.0, 1e3]))
    x_changed[:, changed_from:] = scale * rng.standard_normal((B, t - changed_from, E))
    out, weights = (r.numpy() for r in attend(mha, "self", [tensor(x, backend)], is_causal=True))
    out_changed, _ = attend(mha, "self", [tensor(x_changed, backend)], is_causal=True)
    np.testing.assert_allclose(out_changed.numpy()[:, :changed_from], out[:, :changed_from],
                               rtol=1e-12, atol=1e-14)
    future = np.triu(np.ones((t, t), dtype=bool), k=1)                     # key s > query t
    assert np.all(weights[:, future] == 0.0)
    explicit, _ = attend(mha, "self", [tensor(x, backend)], attn_mask=tensor(future, backend))
    np.testing.assert_allclose(out, explicit.numpy(), rtol=1e-12, atol=1e-14)


# -- each path takes its own projection code ---------------------------------------------

IN_PROJECTION_MATMULS = {"self": 1, "kv": 2, "qkv": 3}     # one linear per distinct input

# With batch_first=False, forward must test `query is key` before swapping axes, or the fused
# self-attention (3E, E) and key-value (2E, E) projections would never be taken.
@pytest.mark.parametrize("path, batch_first", [
    ("self", True), ("kv", True), ("qkv", True), ("self", False), ("kv", False), ("qkv", False)])
def test_each_path_takes_its_projection(monkeypatch, path, batch_first):
    import minigrad.nn.multihead_attention as module
    calls = []
    monkeypatch.setattr(module, "linear", lambda *a: calls.append(a) or mg.nn.functional.linear(*a))
    mha = make_mha("numpy", batch_first=batch_first)
    attend(mha, path, [tensor(a) for a in input_arrays(path, batch_first=batch_first)])
    assert len(calls) == IN_PROJECTION_MATMULS[path]


# -- PyTorch ------------------------------------------------------------------------------

def torch_mha(torch, dtype, seed=0, **kwargs):
    """torch.nn.MultiheadAttention (batch_first=True: torch's default is False) with random
    parameters, biases included."""
    torch.manual_seed(seed)
    module = torch.nn.MultiheadAttention(E, H, batch_first=kwargs.pop("batch_first", True), **kwargs)
    module = module.to(getattr(torch, dtype))
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.8, 0.8)
    return module


def torch_masks(torch, masks, dtype):
    """The same masks for torch; a boolean key_padding_mask becomes additive (-inf) next to a
    float attn_mask (torch deprecates mixing the two kinds; the meaning is the same)."""
    out = {}
    for name, mask in masks.items():
        if mask.dtype == bool and masks.get("attn_mask", mask).dtype != bool:
            mask = np.where(mask, -np.inf, 0.0)
        out[name] = torch.from_numpy(mask.astype(dtype) if mask.dtype != bool else mask)
    return out


def run_both(torch, backend, path, masks, dtype, need_weights=True, average_attn_weights=True,
             **options):
    """torch's and minigrad's results, same weights, same random upstream gradient: two dicts
    name -> NumPy array of the outputs, the input gradients and every parameter gradient."""
    theirs = torch_mha(torch, dtype, **options)
    ours = make_mha(backend, dtype=dtype, **options)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    arrays = input_arrays(path, dtype=dtype, batch_first=options.get("batch_first", True))
    kwargs = dict(need_weights=need_weights, average_attn_weights=average_attn_weights)
    xs_t = [torch.tensor(a, requires_grad=True) for a in arrays]
    xs_m = [tensor(a, backend, requires_grad=True) for a in arrays]
    outs_t = attend(theirs, path, xs_t, **torch_masks(torch, masks, dtype), **kwargs)
    outs_m = attend(ours, path, xs_m, **on_backend(masks, backend), **kwargs)
    outs_t, outs_m = ([o for o in outs if o is not None] for outs in (outs_t, outs_m))   # weights
    gys = [upstream(tuple(o.shape), 20 + k, "numpy", dtype) for k, o in enumerate(outs_t)]
    torch.autograd.backward(outs_t, [torch.from_numpy(g) for g in gys])
    backward(outs_m, [mg.backend.backend_by_name(backend).from_numpy(g) for g in gys])
    theirs_results = {f"output {k}": o.detach().numpy() for k, o in enumerate(outs_t)}
    theirs_results.update({f"grad of input {k}": x.grad.numpy() for k, x in enumerate(xs_t)})
    theirs_results.update({f"grad of {name}": p.grad.numpy() for name, p in theirs.named_parameters()})
    ours_results = {f"output {k}": o.numpy() for k, o in enumerate(outs_m)}
    ours_results.update({f"grad of input {k}": to_numpy(x.grad) for k, x in enumerate(xs_m)})
    ours_results.update({f"grad of {name}": to_numpy(p.grad) for name, p in ours.named_parameters()})
    return theirs_results, ours_results


def assert_same(theirs, ours, dtype):
    assert list(ours) == list(theirs)                      # the same outputs and parameter names
    for name, expected in theirs.items():
        np.testing.assert_allclose(ours[name], expected, **TOL[dtype], err_msg=name)


MASKED = ("none", "bool_BhTS", "key_padding+bool_TS", "key_padding+float_BhTS")
OPTIONS = (dict(average_attn_weights=False), dict(need_weights=False), dict(bias=False),
           dict(batch_first=False))
TORCH_CASES = ([(path, masks, {}) for path in PATHS for masks in MASKED]
               + [("qkv", "float_key_padding+float_TS", {})]
               + [(path, "key_padding+float_TS", options) for path in PATHS for options in OPTIONS])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path, masks, options", TORCH_CASES)
def test_matches_pytorch_outputs_weights_and_every_gradient(backend, dtype, path, masks, options):
    torch = pytest.importorskip("torch")
    masks = mask_arrays(masks, source_length(path))
    assert_same(*run_both(torch, backend, path, masks, dtype, **options), dtype)


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_names_and_shapes_are_pytorchs(bias):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.MultiheadAttention(E, H, bias=bias, batch_first=True).state_dict()
    ours = make_mha("numpy", bias=bias, dtype="float32").state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == tuple(v.shape) for k, v in theirs.items())
    assert all(v.dtype == np.float32 for v in ours.values())


# -- docstring shapes, initialization, dropout ------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("need_weights, average, weights_shape",
                         [(True, True, (B, T, S)), (True, False, (B, H, T, S)), (False, True, None)])
@pytest.mark.parametrize("batch_first", [True, False])
def test_docstring_shapes(backend, need_weights, average, weights_shape, batch_first):
    mha = make_mha(backend, batch_first=batch_first)
    assert mha.in_proj_weight.shape == (3 * E, E) and mha.in_proj_bias.shape == (3 * E,)
    assert mha.out_proj.weight.shape == (E, E) and mha.out_proj.bias.shape == (E,)
    xs = [tensor(a, backend) for a in input_arrays("qkv", batch_first=batch_first)]
    out, weights = mha(*xs, need_weights=need_weights, average_attn_weights=average)
    assert out.shape == ((B, T, E) if batch_first else (T, B, E))
    assert (weights is None) if weights_shape is None else weights.shape == weights_shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", PATHS)
def test_length_first_equals_batch_first_on_swapped_inputs(backend, path):
    batch_first, length_first = make_mha(backend), make_mha(backend, batch_first=False)
    length_first.load_state_dict(randomize(batch_first).state_dict())
    kwargs = on_backend(mask_arrays("key_padding+float_BhTS", source_length(path)), backend)
    arrays = input_arrays(path)
    out, weights = attend(batch_first, path, [tensor(a, backend) for a in arrays], **kwargs)
    swapped = [tensor(a.swapaxes(0, 1), backend) for a in arrays]                 # (L, B, E)
    out_lf, weights_lf = attend(length_first, path, swapped, **kwargs)
    np.testing.assert_allclose(out_lf.numpy(), out.numpy().swapaxes(0, 1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weights_lf.numpy(), weights.numpy(), rtol=1e-12, atol=1e-14)


def assert_uniform_within(array, bound):
    """All of ``array`` in [-bound, bound], and reaching near both ends (not a narrower law)."""
    assert np.abs(array).max() <= bound
    assert array.max() > 0.95 * bound and array.min() < -0.95 * bound


@pytest.mark.parametrize("backend", BACKENDS)
def test_initialization_is_pytorchs(backend):
    embed_dim = 32
    mha = make_mha(backend, embed_dim=embed_dim, num_heads=4, dtype="float32")
    assert all(p.dtype == np.float32 for p in mha.parameters())
    xavier = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))                  # fan_in E, fan_out 3E
    assert_uniform_within(mha.in_proj_weight.numpy(), xavier)
    assert_uniform_within(mha.out_proj.weight.numpy(), 1.0 / math.sqrt(embed_dim))   # Linear's
    assert np.all(mha.in_proj_bias.numpy() == 0.0) and np.all(mha.out_proj.bias.numpy() == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_acts_on_the_weights_in_training_only(backend):
    p = 0.5
    plain, dropping = make_mha(backend), make_mha(backend, dropout=p)
    dropping.load_state_dict(randomize(plain).state_dict())
    xs = [tensor(a, backend) for a in input_arrays("qkv")]
    out, weights = (r.numpy() for r in plain(*xs, average_attn_weights=False))
    dropping.eval()
    for r, expected in zip(dropping(*xs, average_attn_weights=False), (out, weights)):
        np.testing.assert_array_equal(r.numpy(), expected)
    dropping.train()
    mg.manual_seed(0)
    out_train, weights_train = (r.numpy() for r in dropping(*xs, average_attn_weights=False))
    kept = weights_train != 0.0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(weights_train[kept], weights[kept] / (1 - p), rtol=1e-12)
    assert not np.allclose(out_train, out)


# -- bad input ------------------------------------------------------------------------------

def test_embed_dim_not_divisible_by_heads_is_refused():
    with pytest.raises(ValueError, match=r"embed_dim \(6\) must be divisible by num_heads \(4\)"):
        MultiheadAttention(6, 4)


def test_zero_heads_is_refused():
    with pytest.raises(ValueError, match="num_heads"):
        MultiheadAttention(4, 0)


BAD_INPUTS = [
    (dict(query=(B, T, E + 1)), ValueError, r"expected query of shape \(B, L, 4\).*got \(2, 3, 5\)"),
    (dict(query=(T, E)), ValueError, r"expected query of shape \(B, L, 4\).*got \(3, 4\)"),
    (dict(key=(B, S, E - 1)), ValueError, r"expected key of shape \(B, L, 4\).*got \(2, 4, 3\)"),
    (dict(value=(B, S + 1, E)), ValueError, r"key and value the length"),
    (dict(key=(B + 1, S, E), value=(B + 1, S, E)), ValueError, r"must share the batch"),
    (dict(key_padding_mask=np.zeros((B, S + 1), bool)), ValueError,
     r"expected key_padding_mask of shape \(2, 4\), got \(2, 5\)"),
    (dict(key_padding_mask=np.zeros((S,), bool)), ValueError,
     r"expected key_padding_mask of shape \(2, 4\), got \(4,\)"),
    (dict(attn_mask=np.zeros((T, S + 1), bool)), ValueError,
     r"expected attn_mask of shape \(3, 4\) or \(4, 3, 4\), got \(3, 5\)"),
    (dict(attn_mask=np.zeros((B, T, S), bool)), ValueError,
     r"expected attn_mask of shape \(3, 4\) or \(4, 3, 4\), got \(2, 3, 4\)"),
    (dict(attn_mask=np.zeros((T, S), np.int64)), TypeError, r"boolean or float mask, got dtype int64"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, error, message", BAD_INPUTS)
def test_bad_input_names_expected_and_got(backend, bad, error, message):
    mha = make_mha(backend)
    shapes = dict(query=(B, T, E), key=(B, S, E), value=(B, S, E))
    args = {k: tensor(np.zeros(bad.get(k, shape)), backend) for k, shape in shapes.items()}
    masks = {k: tensor(v, backend) for k, v in bad.items() if k not in shapes}
    with pytest.raises(error, match=message):
        mha(**args, **masks)


# -- step-by-step decoding with a KVCache ----------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prefill", [1, 2, 3])
def test_a_growing_cache_with_is_causal_equals_the_full_causal_pass(backend, prefill):
    """A prefix of ``prefill`` steps, then one step at a time: each new query sees every
    cached step (the causal mask is offset by the cache), so the outputs equal one pass."""
    from minigrad.nn import KVCache
    mg.manual_seed(0)
    mha = MultiheadAttention(E, H).double().to(backend)
    x = tensor(np.random.default_rng(1).standard_normal((B, 5, E)), backend)
    full, _ = mha(x, x, x, is_causal=True)
    cache = KVCache(static=False)
    pieces = [mha(x[:, :prefill], x[:, :prefill], x[:, :prefill], is_causal=True, cache=cache)[0]]
    for t in range(prefill, 5):
        step = x[:, t:t + 1]
        pieces.append(mha(step, step, step, is_causal=True, cache=cache)[0])
    np.testing.assert_allclose(mg.concatenate(pieces, axis=1).numpy(), full.numpy(), rtol=1e-12, atol=1e-14)


def test_a_static_cache_projects_the_memory_once(monkeypatch):
    from minigrad.nn import KVCache
    import minigrad.nn.multihead_attention as module
    mg.manual_seed(0)
    mha = MultiheadAttention(E, H).double()
    memory = tensor(np.random.default_rng(2).standard_normal((B, S, E)))
    queries = tensor(np.random.default_rng(3).standard_normal((B, 3, E)))
    full, _ = mha(queries, memory, memory)
    calls = []
    monkeypatch.setattr(module, "linear", lambda *a: calls.append(a[0].shape) or mg.nn.functional.linear(*a))
    cache = KVCache(static=True)
    steps = [mha(queries[:, t:t + 1], memory, memory, cache=cache)[0] for t in range(3)]
    np.testing.assert_allclose(mg.concatenate(steps, axis=1).numpy(), full.numpy(), rtol=1e-12, atol=1e-14)
    assert [shape for shape in calls if shape[1] == S] == [(B, S, E)]   # the memory: one projection
