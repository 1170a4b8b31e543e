"""functional.scaled_dot_product_attention and attention_weights (Vaswani et al. 2017, §3.2.1).

softmax(Q K^T / sqrt(d_k) + M) V with leading (batch, heads) axes, boolean masks
(True = NOT allowed, minigrad's one convention), float masks (added) and
is_causal: the weights against NumPy; float64 gradient checks with respect to q,
k and v under each kind of mask; hypothesis laws (the weights are a distribution,
masked keys get exactly 0, the future never reaches the past under is_causal, a
query changes only its own row, appended masked keys of any content change
nothing, a boolean mask is the float mask with -inf); outputs and gradients
against torch.nn.functional.scaled_dot_product_attention (whose boolean mask
means True = allowed, so it gets ~mask); dropout; the shapes in the docstrings;
bad input. Every test runs on each backend in BACKENDS.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, assert_close, check_grad, tensor
from minigrad.nn.functional import attention_weights, scaled_dot_product_attention as sdpa

to_numpy = mg.backend.to_numpy

LEAD = (2, 2)                          # (batch, heads)
T, S, D_K, D_V = 3, 4, 5, 2


def qkv(lead=LEAD, T=T, S=S, d_k=D_K, d_v=D_V, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype)
                 for shape in ((*lead, T, d_k), (*lead, S, d_k), (*lead, S, d_v)))


def make_mask(kind, lead=LEAD, T=T, S=S, seed=1):
    """(attn_mask for minigrad as a NumPy array or None, is_causal); every row keeps key 0."""
    rng = np.random.default_rng(seed)
    if kind == "none":
        return None, False
    if kind == "causal":
        return None, True
    if kind == "bool":                                    # one (T, S) mask for every batch and head
        mask = rng.random((T, S)) < 0.4
    elif kind == "key_padding":                           # (B, 1, 1, S): padding per sentence
        mask = np.zeros((lead[0], 1, 1, S), dtype=bool)
        mask[0, ..., S - 2:] = True
        return mask, False
    else:                                                 # "float": any additive bias, -inf included
        mask = rng.standard_normal((*lead, T, S))
        mask[rng.random(mask.shape) < 0.3] = -np.inf
    mask[..., 0] = False if mask.dtype == bool else 0.0
    return mask, False


MASK_KINDS = ["none", "bool", "key_padding", "float", "causal"]


def np_weights(q, k, mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + M) in NumPy, M from a boolean (True = not allowed) or float mask."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    if is_causal:
        mask = np.triu(np.ones(scores.shape[-2:], dtype=bool), k=1)
    if mask is not None:
        scores = np.where(mask, -np.inf, scores) if mask.dtype == bool else scores + mask
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def maybe_tensor(array, backend):
    return None if array is None else tensor(array, backend)


# -- against NumPy ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("scale", [None, 0.7])
def test_weights_and_output_match_numpy(backend, mask_kind, scale):
    q, k, v = qkv()
    mask, is_causal = make_mask(mask_kind)
    args = [tensor(q, backend), tensor(k, backend)]
    kwargs = dict(attn_mask=maybe_tensor(mask, backend), is_causal=is_causal, scale=scale)
    expected = np_weights(q, k, mask, is_causal, scale)
    assert_close(attention_weights(*args, **kwargs), expected, rtol=1e-12, atol=1e-15)
    assert_close(sdpa(*args, tensor(v, backend), **kwargs), expected @ v, rtol=1e-12, atol=1e-15)


# -- gradient checks ----------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
def test_gradcheck_wrt_q_k_v(backend, mask_kind):
    mask, is_causal = make_mask(mask_kind)
    m = maybe_tensor(mask, backend)
    check_grad(lambda q, k, v: sdpa(q, k, v, attn_mask=m, is_causal=is_causal),
               [tensor(x, backend, requires_grad=True) for x in qkv()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
def test_gradcheck_of_the_weights_wrt_q_k(backend, mask_kind):
    mask, is_causal = make_mask(mask_kind)
    m = maybe_tensor(mask, backend)
    check_grad(lambda q, k: attention_weights(q, k, attn_mask=m, is_causal=is_causal),
               [tensor(x, backend, requires_grad=True) for x in qkv()[:2]])


# -- laws --------------------------------------------------------------------------------------

@st.composite
def attention_inputs(draw, low=-3.0, high=3.0):
    """q, k, v with 0 to 2 leading axes, and a boolean (T, S) mask that keeps key 0."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=2))
    T, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d_k, d_v = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    floats = st.floats(low, high, allow_nan=False, width=64)
    q, k, v = (draw(hnp.arrays(np.float64, shape, elements=floats))
               for shape in ((*lead, T, d_k), (*lead, S, d_k), (*lead, S, d_v)))
    mask = draw(hnp.arrays(np.bool_, (T, S)))
    mask[:, 0] = False
    return q, k, v, mask


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(inputs=attention_inputs())
def test_weights_are_a_distribution_and_masked_keys_get_exactly_zero(backend, inputs):
    q, k, v, mask = inputs
    weights = attention_weights(tensor(q, backend), tensor(k, backend), tensor(mask, backend)).numpy()
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(weights[..., mask] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(inputs=attention_inputs(), data=st.data())
def test_under_is_causal_later_keys_and_values_never_reach_earlier_rows(backend, inputs, data):
    q, k, v, _ = inputs
    t = data.draw(st.integers(0, q.shape[-2] - 1))
    k2, v2 = k.copy(), v.copy()
    k2[..., t + 1:, :] = data.draw(hnp.arrays(np.float64, k2[..., t + 1:, :].shape,
                                              elements=st.floats(-1e3, 1e3, width=64)))
    v2[..., t + 1:, :] = data.draw(hnp.arrays(np.float64, v2[..., t + 1:, :].shape,
                                              elements=st.floats(-1e3, 1e3, width=64)))
    out = sdpa(tensor(q, backend), tensor(k, backend), tensor(v, backend), is_causal=True).numpy()
    out2 = sdpa(tensor(q, backend), tensor(k2, backend), tensor(v2, backend), is_causal=True).numpy()
    np.testing.assert_array_equal(out2[..., :t + 1, :], out[..., :t + 1, :])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("is_causal", [False, True])
@settings(deadline=None)
@given(inputs=attention_inputs(), data=st.data())
def test_changing_query_t_changes_only_row_t(backend, is_causal, inputs, data):
    q, k, v, _ = inputs
    t = data.draw(st.integers(0, q.shape[-2] - 1))
    q2 = q.copy()
    q2[..., t, :] = data.draw(hnp.arrays(np.float64, q2[..., t, :].shape, elements=st.floats(-3, 3, width=64)))
    out = sdpa(tensor(q, backend), tensor(k, backend), tensor(v, backend), is_causal=is_causal).numpy()
    out2 = sdpa(tensor(q2, backend), tensor(k, backend), tensor(v, backend), is_causal=is_causal).numpy()
    others = np.arange(q.shape[-2]) != t
    np.testing.assert_array_equal(out2[..., others, :], out[..., others, :])


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(inputs=attention_inputs(), data=st.data())
def test_appended_masked_keys_of_any_content_change_nothing(backend, inputs, data):
    q, k, v, mask = inputs
    P = data.draw(st.integers(1, 3))
    huge = st.floats(-1e6, 1e6, allow_nan=False, width=64)
    k2 = np.concatenate([k, data.draw(hnp.arrays(np.float64, (*k.shape[:-2], P, k.shape[-1]), elements=huge))], -2)
    v2 = np.concatenate([v, data.draw(hnp.arrays(np.float64, (*v.shape[:-2], P, v.shape[-1]), elements=huge))], -2)
    mask2 = np.concatenate([mask, np.ones((mask.shape[0], P), dtype=bool)], axis=1)
    out = sdpa(tensor(q, backend), tensor(k, backend), tensor(v, backend), tensor(mask, backend)).numpy()
    out2 = sdpa(tensor(q, backend), tensor(k2, backend), tensor(v2, backend), tensor(mask2, backend)).numpy()
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-14)
    weights2 = attention_weights(tensor(q, backend), tensor(k2, backend), tensor(mask2, backend)).numpy()
    np.testing.assert_array_equal(weights2[..., mask.shape[1]:], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(inputs=attention_inputs())
def test_boolean_mask_equals_the_float_mask_with_minus_infinity(backend, inputs):
    q, k, v, mask = inputs
    float_mask = np.where(mask, -np.inf, 0.0)
    args = tensor(q, backend), tensor(k, backend), tensor(v, backend)
    np.testing.assert_array_equal(sdpa(*args, tensor(float_mask, backend)).numpy(),
                                  sdpa(*args, tensor(mask, backend)).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(inputs=attention_inputs())
def test_is_causal_equals_the_explicit_upper_triangular_mask(backend, inputs):
    q, k, v, _ = inputs
    causal = np.triu(np.ones((q.shape[-2], k.shape[-2]), dtype=bool), k=1)
    args = tensor(q, backend), tensor(k, backend), tensor(v, backend)
    np.testing.assert_array_equal(sdpa(*args, is_causal=True).numpy(),
                                  sdpa(*args, tensor(causal, backend)).numpy())


# -- dropout ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_is_off_when_not_training(backend):
    args = [tensor(x, backend) for x in qkv()]
    np.testing.assert_array_equal(sdpa(*args, dropout_p=0.5, training=False).numpy(), sdpa(*args).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_zeroes_weights_and_scales_the_rest(backend):
    q, k, _ = qkv()
    v = np.broadcast_to(np.eye(S), (*LEAD, S, S)).copy()       # the output is then the weights
    weights = np_weights(q, k)
    mg.manual_seed(0)
    out = sdpa(tensor(q, backend), tensor(k, backend), tensor(v, backend), dropout_p=0.5).numpy()
    dropped = out == 0.0
    assert dropped.any() and (~dropped).any()
    np.testing.assert_allclose(out[~dropped], weights[~dropped] / 0.5, rtol=1e-12)


# -- against PyTorch --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS + ["fully_masked_row"])
@pytest.mark.parametrize("scale", [None, 0.7])
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12), (np.float32, 1e-5, 1e-6)])
@pytest.mark.parametrize("T_", [3, 5], ids=["T<S", "T>S"])
def test_matches_pytorch_outputs_and_gradients(backend, mask_kind, scale, dtype, rtol, atol, T_):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(T=T_, dtype=dtype)
    if mask_kind == "fully_masked_row":       # the second query may see no key at all
        mask, is_causal = make_mask("bool", T=T_)
        mask[1] = True
    else:
        mask, is_causal = make_mask(mask_kind, T=T_)
    if mask is not None and mask.dtype != bool:
        mask = mask.astype(dtype)
    gy = np.random.default_rng(2).standard_normal((*LEAD, T_, D_V)).astype(dtype)

    inputs = [tensor(x, backend, requires_grad=True) for x in (q, k, v)]
    out = sdpa(*inputs, attn_mask=maybe_tensor(mask, backend), is_causal=is_causal, scale=scale)
    out.backward(tensor(gy, backend))

    torch_inputs = [torch.tensor(x, requires_grad=True) for x in (q, k, v)]
    torch_mask = None if mask is None else torch.tensor(~mask if mask.dtype == bool else mask)
    torch_out = torch.nn.functional.scaled_dot_product_attention(
        *torch_inputs, attn_mask=torch_mask, is_causal=is_causal, scale=scale)
    torch_out.backward(torch.tensor(gy))

    assert out.dtype == dtype
    assert_close(out, torch_out.detach().numpy(), rtol=rtol, atol=atol)
    for x, torch_x in zip(inputs, torch_inputs):
        assert_close(x.grad, torch_x.grad.numpy(), rtol=rtol, atol=atol)


# -- the shapes in the docstrings ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("q_lead, kv_lead, out_lead", [
    ((), (), ()),
    ((2,), (2,), (2,)),
    ((2, 3), (2, 3), (2, 3)),
    ((2, 1), (1, 3), (2, 3)),              # the leading axes broadcast
])
def test_docstring_shapes(backend, q_lead, kv_lead, out_lead):
    q = tensor(np.zeros((*q_lead, T, D_K)), backend)
    k, v = tensor(np.zeros((*kv_lead, S, D_K)), backend), tensor(np.zeros((*kv_lead, S, D_V)), backend)
    assert attention_weights(q, k).shape == (*out_lead, T, S)
    assert sdpa(q, k, v).shape == (*out_lead, T, D_V)


# -- bad input ----------------------------------------------------------------------------------

BAD_INPUTS = [
    (dict(attn_mask=np.zeros((T, S), bool), is_causal=True), ValueError,
     "give attn_mask or is_causal=True, not both"),
    (dict(k=np.zeros((*LEAD, S, D_K + 1))), ValueError,
     r"one width d_k, got q \(2, 2, 3, 5\) and k \(2, 2, 4, 6\)"),
    (dict(v=np.zeros((*LEAD, S + 1, D_V))), ValueError,
     r"one length S, got k \(2, 2, 4, 5\) and v \(2, 2, 5, 2\)"),
    (dict(attn_mask=np.zeros((T, S + 1), bool)), ValueError,
     r"attn_mask of shape \(3, 5\) does not broadcast to the attention scores of shape \(2, 2, 3, 4\)"),
    (dict(attn_mask=np.zeros((3, *LEAD, T, S), bool)), ValueError,
     r"attn_mask of shape \(3, 2, 2, 3, 4\) does not broadcast"),
    (dict(attn_mask=np.zeros((T, S), np.int64)), TypeError,
     "attn_mask: expected a boolean or float mask, got dtype int64"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, error, message", BAD_INPUTS)
def test_bad_input_is_refused_naming_expected_and_got(backend, bad, error, message):
    q, k, v = qkv()
    arrays = dict(q=q, k=k, v=v, attn_mask=None)
    arrays.update({name: x for name, x in bad.items() if name != "is_causal"})
    with pytest.raises(error, match=message):
        sdpa(*(maybe_tensor(arrays[name], backend) for name in ("q", "k", "v", "attn_mask")),
             is_causal=bad.get("is_causal", False))
