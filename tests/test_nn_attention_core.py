"""The fused attention core (minigrad/ops/nn_attention.py, AttentionCore) against its
composed reference (minigrad/nn/scaled_dot_product.py::attention_core_composed) and
finite differences, with and without dropout on the weights."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.nn.scaled_dot_product import attention_core, attention_core_composed

from helpers import BACKENDS, assert_close, check_grad, tensor


def qkv(lead, T, S, d, backend, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    draw = lambda *shape: tensor(scale * rng.standard_normal(lead + shape), backend, requires_grad=True)  # noqa: E731
    return draw(T, d), draw(S, d), draw(S, d + 1)


def masks_for(kind, lead, T, S, backend, seed=0):
    rng = np.random.default_rng(seed)
    padding = rng.random(lead[:1] + (1,) * (len(lead) - 1) + (1, S)) < 0.3
    padding[..., 0] = False                                   # keep one key per row
    causal = np.triu(np.ones((T, S), bool), k=1)
    additive = rng.standard_normal((T, S))
    return {"none": [],
            "bool": [(tensor(padding, backend), "key_padding_mask")],
            "float": [(tensor(additive, backend), "attn_mask")],
            "both": [(tensor(additive, backend), "attn_mask"), (tensor(padding, backend), "key_padding_mask")],
            "causal+padding": [(tensor(causal, backend), "attn_mask"), (tensor(padding, backend), "key_padding_mask")],
            "all masked": [(tensor(np.ones((T, S), bool), backend), "attn_mask")]}[kind]


MASKS = ["none", "bool", "float", "both", "causal+padding", "all masked"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", MASKS)
def test_fused_core_gradcheck_of_output_and_weights(mask, backend):
    q, k, v = qkv((2, 2), 3, 4, 2, backend)
    masks = masks_for(mask, (2, 2), 3, 4, backend)
    check_grad(lambda q, k, v: attention_core(q, k, v, masks), [q, k, v])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", MASKS)
def test_fused_core_gradcheck_of_the_output_alone(mask, backend):
    """need_weights=False: O is the op's only output (no gradient of P' comes back)."""
    q, k, v = qkv((2, 2), 3, 4, 2, backend)
    masks = masks_for(mask, (2, 2), 3, 4, backend)
    out, weights = attention_core(q, k, v, masks, need_weights=False)
    assert weights is None and type(out.creator).__name__ == "AttentionCore"
    check_grad(lambda q, k, v: attention_core(q, k, v, masks, need_weights=False)[0], [q, k, v])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", MASKS)
@settings(deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4), S=st.integers(1, 5), d=st.integers(1, 4),
       scale=st.sampled_from([0.1, 1.0, 10.0]), seed=st.integers(0, 2**16))
def test_fused_core_equals_composed(mask, backend, B, T, S, d, scale, seed):
    """Values of O and P, and the gradients of q, k, v under random upstream gradients
    of both outputs; scale 10 makes near one-hot rows."""
    results = {}
    for name, core in (("fused", attention_core), ("composed", attention_core_composed)):
        q, k, v = qkv((B,), T, S, d, backend, seed, scale)
        out, weights = core(q, k, v, masks_for(mask, (B,), T, S, backend, seed))
        upstream = np.random.default_rng(seed + 1)
        mg.autograd.backward([out, weights], [tensor(upstream.standard_normal(y.shape), backend).data
                                              for y in (out, weights)])
        results[name] = [out.numpy(), weights.numpy()] + [mg.backend.to_numpy(x.grad) for x in (q, k, v)]
    for a, b in zip(results["fused"], results["composed"]):
        assert_close(a, b, rtol=1e-10, atol=1e-12)




# -- dropout on the weights: the fused op draws the keep-mask as dropout() does ----------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", MASKS)
@settings(deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4), S=st.integers(1, 5), d=st.integers(1, 4),
       p=st.sampled_from([0.1, 0.5, 0.9, 1.0]), seed=st.integers(0, 2**16))
def test_fused_core_with_dropout_equals_composed_for_one_seed(mask, backend, B, T, S, d, p, seed):
    """One seed, one keep-mask: O, P' and the gradients of q, k, v of the fused op equal
    the composed reference's (softmax, then the dropout op, then the product)."""
    results = {}
    for name, core in (("fused", attention_core), ("composed", attention_core_composed)):
        q, k, v = qkv((B,), T, S, d, backend, seed)
        masks = masks_for(mask, (B,), T, S, backend, seed)
        mg.manual_seed(seed)
        out, weights = core(q, k, v, masks, dropout_p=p, training=True)
        assert (type(out.creator).__name__ == "AttentionCore") == (name == "fused")
        upstream = np.random.default_rng(seed + 1)
        mg.autograd.backward([out, weights], [tensor(upstream.standard_normal(y.shape), backend).data
                                              for y in (out, weights)])
        results[name] = [out.numpy(), weights.numpy()] + [mg.backend.to_numpy(x.grad) for x in (q, k, v)]
    for a, b in zip(results["fused"], results["composed"]):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", ["none", "causal+padding"])
def test_fused_core_gradcheck_with_dropout(mask, backend):
    q, k, v = qkv((2, 2), 3, 4, 2, backend)
    masks = masks_for(mask, (2, 2), 3, 4, backend)

    def core(q, k, v):
        mg.manual_seed(3)                                     # the same keep-mask at every call
        return attention_core(q, k, v, masks, dropout_p=0.4)
    check_grad(core, [q, k, v])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_zeroes_weights_scales_the_rest_and_follows_the_seed(backend):
    q, k, v = qkv((2, 2), 6, 7, 3, backend)
    _, plain = attention_core(q, k, v, [])
    runs = []
    for seed in (5, 5, 6):
        mg.manual_seed(seed)
        out, weights = attention_core(q, k, v, [], dropout_p=0.5)
        assert type(out.creator).__name__ == "AttentionCore"
        runs.append(weights.numpy())
    kept = runs[0] != 0.0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(runs[0][kept], plain.numpy()[kept] / 0.5, rtol=1e-12)
    np.testing.assert_array_equal(runs[0], runs[1])                # mg.manual_seed decides the mask
    assert np.any(runs[0] != runs[2])
    mg.manual_seed(5)
    _, evaluated = attention_core(q, k, v, [], dropout_p=0.5, training=False)
    np.testing.assert_array_equal(evaluated.numpy(), plain.numpy())   # no dropout outside training


def test_the_composed_path_runs_where_the_leading_axes_broadcast():
    rng = np.random.default_rng(0)
    q = tensor(rng.standard_normal((2, 1, 3, 4)), "numpy", requires_grad=True)
    k, v = (tensor(rng.standard_normal((1, 3, 5, 4)), "numpy", requires_grad=True) for _ in range(2))
    out, weights = attention_core(q, k, v, [])
    assert type(out.creator).__name__ == "MatMul" and out.shape == (2, 3, 3, 4)
    assert weights.shape == (2, 3, 3, 5)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_a_dropout_p_outside_0_1_is_refused(p):
    q, k, v = qkv((1,), 2, 3, 2, "numpy")
    for training in (True, False):
        with pytest.raises(ValueError, match=rf"dropout_p must be a probability in \[0, 1\], got {p}"):
            attention_core(q, k, v, [], dropout_p=p, training=training)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("dropout_p", [0.0, 0.4])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_core_in_blocks_of_rows_is_the_whole_batch_bit_for_bit(mask, dropout_p, need_weights, dtype,
                                                                     monkeypatch):
    """The op runs over blocks of the batch sized by the backend's cache_block: every
    row its own block, blocks of two rows (the last short) and the whole batch at once
    give the same O, P' and gradients of q, k and v, bit for bit, every kind of mask
    (sliced along with the rows, or broadcast) and dropout's keep-mask included."""
    B, h, T, S, d = 5, 2, 3, 4, 2
    numpy_backend = mg.backend.backend_by_name("numpy")
    runs = []
    for cache_block in (None, 1, 2 * h * T * S):          # the whole; one row a block; two rows
        monkeypatch.setattr(numpy_backend, "cache_block", cache_block)
        q, k, v = (tensor(x.numpy().astype(dtype), "numpy", requires_grad=True)
                   for x in qkv((B, h), T, S, d, "numpy", seed=7))
        masks = masks_for(mask, (B, h), T, S, "numpy", seed=7)
        mg.manual_seed(11)
        out, weights = attention_core(q, k, v, masks, dropout_p=dropout_p, need_weights=need_weights)
        outputs = [out] + ([weights] if need_weights else [])
        upstream = np.random.default_rng(3)
        mg.autograd.backward(outputs, [upstream.standard_normal(y.shape).astype(dtype) for y in outputs])
        runs.append([y.numpy() for y in outputs] + [x.grad for x in (q, k, v)])
    for blocked in runs[1:]:
        for whole, part in zip(runs[0], blocked):
            np.testing.assert_array_equal(part, whole)
