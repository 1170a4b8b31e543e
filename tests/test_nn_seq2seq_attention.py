"""AdditiveAttention (Bahdanau 2014) and LuongAttention (Luong 2015: dot, general, concat).

PyTorch has neither layer, so the oracle is NumPy computing each paper's score
from the layer's weights: Bahdanau's v^T tanh(W_q q + W_k k + b), and Luong's
three, the concat one on the explicit concatenation [h_t; h_s] (the layer splits
W_a instead). Then: float64 gradient checks with respect to query, keys, values
and every parameter, a key padding mask in play, one decoder step and many
queries; hypothesis laws (weights are a distribution, masked keys get exactly 0,
padded keys of any content change nothing, context = weights @ values, one step
equals one row of many); precomputed keys; the docstring shapes; bad input.
Every test runs on each backend in BACKENDS.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, assert_close, check_grad, tensor
from minigrad.nn.additive_attention import AdditiveAttention
from minigrad.nn.luong_attention import LuongAttention

to_numpy = mg.backend.to_numpy

Dq, Dk, Dv, H = 3, 4, 2, 5           # query, key, value widths; hidden width of the scoring net

KINDS = ["additive", "dot", "general", "concat"]


def make_layer(kind, backend, dtype="float64"):
    """The layer of ``kind`` on ``backend``; dot attention needs Dq == Dk."""
    with mg.use_backend(backend):
        if kind == "additive":
            layer = AdditiveAttention(Dq, Dk, H)
        elif kind == "dot":
            layer = LuongAttention(Dk, Dk, score="dot")
        else:
            layer = LuongAttention(Dq, Dk, score=kind, hidden_size=H if kind == "concat" else None)
    return layer.to(dtype)


def query_size(kind):
    return Dk if kind == "dot" else Dq


# -- the NumPy oracle: each paper's formula ------------------------------------------

def np_scores(kind, state, q, k):
    """score(q_t, k_s) for q (B, T, Dq), k (B, S, Dk) -> (B, T, S), from the layer's weights."""
    if kind == "additive":      # v^T tanh(W_q q + W_k k + b)
        Wq, Wk, b, v = (state["query_proj.weight"], state["key_proj.weight"],
                        state["key_proj.bias"], state["v.weight"][0])
        hidden = np.tanh((q @ Wq.T)[:, :, None, :] + (k @ Wk.T + b)[:, None, :, :])
        return hidden @ v
    if kind == "dot":           # h_t^T h_s
        return np.einsum("btd,bsd->bts", q, k)
    if kind == "general":       # h_t^T W_a h_s
        return np.einsum("btq,qk,bsk->bts", q, state["key_proj.weight"], k)
    # concat: v_a^T tanh(W_a [h_t; h_s]) on the explicit concatenation
    W_a = np.concatenate([state["query_proj.weight"], state["key_proj.weight"]], axis=1)
    B, T, S = q.shape[0], q.shape[1], k.shape[1]
    pairs = np.concatenate([np.broadcast_to(q[:, :, None, :], (B, T, S, q.shape[2])),
                            np.broadcast_to(k[:, None, :, :], (B, T, S, k.shape[2]))], axis=-1)
    return np.tanh(pairs @ W_a.T) @ state["v.weight"][0]


def np_attention(kind, state, q, k, v, mask):
    """(context (B, T, Dv), weights (B, T, S)): a masked softmax of the scores over s."""
    scores = np_scores(kind, state, q, k)
    scores = np.where(mask[:, None, :], -np.inf, scores)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ v, weights


# -- inputs ---------------------------------------------------------------------------

def random_inputs(kind, B=2, T=3, S=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, T, query_size(kind))).astype(dtype)
    k = rng.standard_normal((B, S, Dk)).astype(dtype)
    v = rng.standard_normal((B, S, Dv)).astype(dtype)
    mask = np.zeros((B, S), dtype=bool)
    mask[0, S - 2:] = True                     # the first sentence has two padding keys
    return q, k, v, mask


def padding_masks(B, S):
    """(B, S) boolean masks with at least one real key per row (the first)."""
    return hnp.arrays(np.bool_, (B, S)).map(lambda m: np.concatenate([np.zeros((B, 1), bool),
                                                                      m[:, 1:]], axis=1))


def upstream(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# -- the oracle ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("one_step", [True, False], ids=["one_step", "many_queries"])
def test_matches_the_papers_formula(backend, kind, one_step):
    layer = make_layer(kind, backend)
    q, k, v, mask = random_inputs(kind)
    q = q[:, :1] if one_step else q
    context, weights = layer(tensor(q[:, 0] if one_step else q, backend), tensor(k, backend),
                             tensor(v, backend), key_padding_mask=tensor(mask, backend))
    expected_context, expected_weights = np_attention(kind, layer.state_dict(), q, k, v, mask)
    if one_step:
        expected_context, expected_weights = expected_context[:, 0], expected_weights[:, 0]
    assert_close(weights, expected_weights, rtol=1e-10, atol=1e-13)
    assert_close(context, expected_context, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_float32_matches_the_papers_formula_and_stays_float32(backend, kind):
    layer = make_layer(kind, backend, "float32")
    q, k, v, mask = random_inputs(kind, dtype=np.float32)
    context, weights = layer(tensor(q, backend), tensor(k, backend), tensor(v, backend),
                             key_padding_mask=tensor(mask, backend))
    assert context.dtype == weights.dtype == np.float32
    state = {name: a.astype(np.float64) for name, a in layer.state_dict().items()}
    expected_context, expected_weights = np_attention(kind, state, q.astype(np.float64),
                                                      k.astype(np.float64), v.astype(np.float64), mask)
    assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)
    assert_close(context, expected_context, rtol=1e-5, atol=1e-6)


# -- gradient checks --------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("one_step", [True, False], ids=["one_step", "many_queries"])
@pytest.mark.parametrize("values_given", [True, False], ids=["values", "values_are_keys"])
def test_gradcheck_wrt_query_keys_values_and_parameters(backend, kind, one_step, values_given):
    layer = make_layer(kind, backend)
    q, k, v, mask = random_inputs(kind, T=2)
    q = q[:, 0] if one_step else q
    m = tensor(mask, backend)
    inputs = [tensor(q, backend, True), tensor(k, backend, True)]
    if values_given:
        inputs.append(tensor(v, backend, True))
    check_grad(lambda *xs: layer(*xs[:len(inputs)], key_padding_mask=m),
               inputs + list(layer.parameters()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_through_precomputed_keys(backend, kind):
    layer = make_layer(kind, backend)
    q, k, v, mask = random_inputs(kind, T=2)
    m = tensor(mask, backend)

    def fn(q, k, v, *parameters):
        return layer(q, k, v, key_padding_mask=m, projected_keys=layer.project_keys(k))

    check_grad(fn, [tensor(q, backend, True), tensor(k, backend, True), tensor(v, backend, True),
                    *layer.parameters()])


# -- laws -------------------------------------------------------------------------------

@st.composite
def attention_inputs(draw, kind, low=-3.0, high=3.0):
    """query (B, T, Dq), keys, values and a mask with one real key per row at least."""
    B, T, S = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    floats = st.floats(low, high, allow_nan=False, width=64)
    q = draw(hnp.arrays(np.float64, (B, T, query_size(kind)), elements=floats))
    k = draw(hnp.arrays(np.float64, (B, S, Dk), elements=floats))
    v = draw(hnp.arrays(np.float64, (B, S, Dv), elements=floats))
    return q, k, v, draw(padding_masks(B, S))


def run(layer, backend, q, k, v, mask, **kwargs):
    context, weights = layer(tensor(q, backend), tensor(k, backend), tensor(v, backend),
                             key_padding_mask=tensor(mask, backend), **kwargs)
    return context.numpy(), weights.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_weights_are_a_distribution_over_the_real_keys(backend, kind, data):
    q, k, v, mask = data.draw(attention_inputs(kind))
    context, weights = run(make_layer(kind, backend), backend, q, k, v, mask)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(weights[np.broadcast_to(mask[:, None, :], weights.shape)] == 0.0)
    np.testing.assert_allclose(context, weights @ v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_appended_padding_keys_of_any_content_change_nothing(backend, kind, data):
    q, k, v, mask = data.draw(attention_inputs(kind))
    B, S, P = k.shape[0], k.shape[1], data.draw(st.integers(1, 3))
    huge = st.floats(-1e6, 1e6, allow_nan=False, width=64)
    k_pad = np.concatenate([k, data.draw(hnp.arrays(np.float64, (B, P, Dk), elements=huge))], axis=1)
    v_pad = np.concatenate([v, data.draw(hnp.arrays(np.float64, (B, P, Dv), elements=huge))], axis=1)
    mask_pad = np.concatenate([mask, np.ones((B, P), dtype=bool)], axis=1)
    layer = make_layer(kind, backend)
    context, weights = run(layer, backend, q, k, v, mask)
    context_pad, weights_pad = run(layer, backend, q, k_pad, v_pad, mask_pad)
    np.testing.assert_array_equal(weights_pad[..., S:], 0.0)
    np.testing.assert_allclose(weights_pad[..., :S], weights, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(context_pad, context, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_one_step_equals_its_row_of_many_queries(backend, kind, data):
    q, k, v, mask = data.draw(attention_inputs(kind))
    t = data.draw(st.integers(0, q.shape[1] - 1))
    layer = make_layer(kind, backend)
    context, weights = run(layer, backend, q, k, v, mask)
    context_t, weights_t = run(layer, backend, q[:, t], k, v, mask)
    np.testing.assert_allclose(context_t, context[:, t], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weights_t, weights[:, t], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None)
@given(data=st.data())
def test_precomputed_keys_give_identical_results_and_gradients(backend, kind, data):
    q, k, v, mask = data.draw(attention_inputs(kind))
    layer = make_layer(kind, backend)
    results = []
    for precompute in (False, True):
        layer.zero_grad()
        keys = tensor(k, backend, True)
        projected = layer.project_keys(keys) if precompute else None
        context, weights = layer(tensor(q, backend), keys, tensor(v, backend),
                                 key_padding_mask=tensor(mask, backend), projected_keys=projected)
        context.backward(tensor(upstream(context.shape), backend))
        results.append([context.numpy(), weights.numpy(), to_numpy(keys.grad)]
                       + [to_numpy(p.grad) for p in layer.parameters()])
    for plain, precomputed in zip(*results):
        np.testing.assert_array_equal(precomputed, plain)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_keys_whose_every_key_is_padding_give_zero_weights_and_context(backend, kind):
    q, k, v, mask = random_inputs(kind)
    mask[1] = True
    context, weights = run(make_layer(kind, backend), backend, q, k, v, mask)
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights[1], 0.0)
    np.testing.assert_array_equal(context[1], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_float_mask_of_zeros_and_minus_infinity_equals_the_boolean_mask(backend, kind):
    q, k, v, mask = random_inputs(kind)
    layer = make_layer(kind, backend)
    float_mask = np.where(mask, -np.inf, 0.0)
    for got, expected in zip(run(layer, backend, q, k, v, float_mask), run(layer, backend, q, k, v, mask)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trips_exactly(backend, kind):
    layer, copy = make_layer(kind, backend), make_layer(kind, backend)
    copy.load_state_dict(layer.state_dict())
    q, k, v, mask = random_inputs(kind)
    for got, expected in zip(run(copy, backend, q, k, v, mask), run(layer, backend, q, k, v, mask)):
        np.testing.assert_array_equal(got, expected)


# -- the shapes in the docstrings ----------------------------------------------------------

PARAMETER_SHAPES = {
    "additive": {"query_proj.weight": (H, Dq), "key_proj.weight": (H, Dk), "key_proj.bias": (H,),
                 "v.weight": (1, H)},
    "dot": {},
    "general": {"key_proj.weight": (Dq, Dk)},
    "concat": {"query_proj.weight": (H, Dq), "key_proj.weight": (H, Dk), "v.weight": (1, H)},
}
PROJECTED_WIDTH = {"additive": H, "dot": Dk, "general": Dq, "concat": H}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_docstring_shapes(backend, kind):
    B, T, S = 2, 3, 5
    layer = make_layer(kind, backend)
    assert {name: p.shape for name, p in layer.named_parameters()} == PARAMETER_SHAPES[kind]
    q, k, v, mask = random_inputs(kind, B, T, S)
    keys = tensor(k, backend)
    assert layer.project_keys(keys).shape == (B, S, PROJECTED_WIDTH[kind])
    context, weights = layer(tensor(q, backend), keys, tensor(v, backend), tensor(mask, backend))
    assert (context.shape, weights.shape) == ((B, T, Dv), (B, T, S))
    context, weights = layer(tensor(q[:, 0], backend), keys, tensor(v, backend), tensor(mask, backend))
    assert (context.shape, weights.shape) == ((B, Dv), (B, S))
    context, weights = layer(tensor(q[:, 0], backend), keys)                  # values = keys
    assert (context.shape, weights.shape) == ((B, Dk), (B, S))


def test_concat_hidden_size_defaults_to_the_query_size():
    assert LuongAttention(Dq, Dk, score="concat").v.weight.shape == (1, Dq)


# -- bad input ----------------------------------------------------------------------------

def bad_call(kind, backend, q=None, k=None, v=None, mask=None, projected=None):
    layer = make_layer(kind, backend)
    q0, k0, v0, mask0 = random_inputs(kind, B=2, T=3, S=4)
    q, k, v, mask = (x0 if x is None else x for x, x0 in ((q, q0), (k, k0), (v, v0), (mask, mask0)))
    projected = None if projected is None else tensor(projected, backend)
    layer(tensor(q, backend), tensor(k, backend), tensor(v, backend), key_padding_mask=tensor(mask, backend),
          projected_keys=projected)


BAD_INPUTS = [
    (dict(q=np.zeros(3)), r"expected query of shape \(B, 3\) or \(B, T, 3\), got \(3,\)"),
    (dict(q=np.zeros((2, 3, 1, 3))), r"expected query of shape .* got \(2, 3, 1, 3\)"),
    (dict(q=np.zeros((2, 3, 7))), r"expected query of shape \(B, T, 3\), got \(2, 3, 7\)"),
    (dict(q=np.zeros((2, 7))), r"expected query of shape \(B, 3\), got \(2, 7\)"),
    (dict(k=np.zeros((2, 4, 7))), r"expected keys of shape \(B, S, 4\), got \(2, 4, 7\)"),
    (dict(k=np.zeros((2, 4))), r"expected keys of shape \(B, S, 4\), got \(2, 4\)"),
    (dict(q=np.zeros((3, 3))), r"one batch size, got query \(3, 3\) and keys \(2, 4, 4\)"),
    (dict(v=np.zeros((2, 5, 2))), r"expected values of shape \(2, 4, Dv\) .* got \(2, 5, 2\)"),
    (dict(v=np.zeros((2, 4))), r"expected values of shape \(2, 4, Dv\) .* got \(2, 4\)"),
    (dict(mask=np.zeros((2, 5), bool)), r"expected key_padding_mask of shape \(2, 4\) .* got \(2, 5\)"),
    (dict(mask=np.zeros((4, 2), bool)), r"expected key_padding_mask of shape \(2, 4\) .* got \(4, 2\)"),
    (dict(projected=np.zeros((2, 4, 9))), r"expected projected_keys of shape \(2, 4, \d\) .* got \(2, 4, 9\)"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["additive", "general", "concat"])
@pytest.mark.parametrize("bad, message", BAD_INPUTS)
def test_bad_shapes_are_refused_naming_expected_and_got(backend, kind, bad, message):
    with pytest.raises(ValueError, match=message):
        bad_call(kind, backend, **bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_an_integer_mask_is_refused(backend, kind):
    with pytest.raises(TypeError, match="key_padding_mask: expected a boolean or float mask, got dtype int64"):
        bad_call(kind, backend, mask=np.zeros((2, 4), dtype=np.int64))


@pytest.mark.parametrize("make, error, message", [
    (lambda: LuongAttention(3, 3, score="bilinear"), ValueError,
     "score must be one of dot, general, concat; got 'bilinear'"),
    (lambda: LuongAttention(3, 4, score="dot"), ValueError,
     "score='dot' needs query_size == key_size, got 3 and 4"),
    (lambda: LuongAttention(3, 3, score="general", hidden_size=5), ValueError,
     "hidden_size is used only by score='concat', got hidden_size=5 with score='general'"),
])
def test_bad_luong_configuration_is_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()
