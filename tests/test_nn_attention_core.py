"""The fused attention core (minigrad/ops/nn_attention.py) against its composed
reference (minigrad.nn.scaled_dot_product.attention_composed) and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.nn.scaled_dot_product import attention, attention_composed

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
    check_grad(lambda q, k, v: attention(q, k, v, masks), [q, k, v])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mask", MASKS)
@settings(deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4), S=st.integers(1, 5), d=st.integers(1, 4),
       scale=st.sampled_from([0.1, 1.0, 10.0]), seed=st.integers(0, 2**16))
def test_fused_core_equals_composed(mask, backend, B, T, S, d, scale, seed):
    """Values of O and P, and the gradients of q, k, v under random upstream gradients
    of both outputs; scale 10 makes near one-hot rows."""
    results = {}
    for name, core in (("fused", attention), ("composed", attention_composed)):
        q, k, v = qkv((B,), T, S, d, backend, seed, scale)
        out, weights = core(q, k, v, masks_for(mask, (B,), T, S, backend, seed))
        upstream = np.random.default_rng(seed + 1)
        mg.autograd.backward([out, weights], [tensor(upstream.standard_normal(y.shape), backend).data
                                              for y in (out, weights)])
        results[name] = [out.numpy(), weights.numpy()] + [mg.backend.to_numpy(x.grad) for x in (q, k, v)]
    for a, b in zip(results["fused"], results["composed"]):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_composed_path_takes_over_under_dropout():
    q, k, v = qkv((2,), 3, 4, 2, "numpy")
    mg.manual_seed(0)
    out, weights = attention(q, k, v, [], dropout_p=0.5, training=True)
    assert out.creator is not None and type(out.creator).__name__ == "MatMul"
    assert np.any(weights.numpy() == 0.0)                        # dropped weights
