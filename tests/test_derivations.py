"""The derivations written in the docstrings, followed step by step in NumPy.

``minigrad/ops/nn_layer_norm.py`` derives layer norm's backward in six steps, one
gradient per forward intermediate, before collecting them into the closed form the
op computes; ``minigrad/ops/nn_cross_entropy.py`` derives softmax(x) - q in three.
Each test writes the docstring's steps as they stand (float64, NumPy) and holds the
fused op's gradient, along a random upstream gradient, equal to them: a step that
drifts from the code fails here.
"""
import numpy as np
import pytest

import minigrad as mg
from helpers import BACKENDS, tensor


def layer_norm_backward_by_steps(x, gamma, gy, eps):
    """Steps 1-6 of nn_layer_norm.py's docstring for x (M, N) normalized over N."""
    N = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    x_hat = xc * rstd
    g_x_hat = gy * gamma                                               # 1.
    g_gamma = (gy * x_hat).sum(axis=0)
    g_beta = gy.sum(axis=0)
    g_xc = g_x_hat * rstd                                              # 2.
    g_rstd = (g_x_hat * xc).sum(axis=-1, keepdims=True)
    g_var = -0.5 * rstd ** 3 * g_rstd                                  # 3.
    g_xc = g_xc + (2 / N) * xc * g_var                                 # 4.
    g_mu = -g_xc.sum(axis=-1, keepdims=True)                           # 5.
    gx = g_xc + g_mu / N                                               # 6.
    return gx, g_gamma, g_beta


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("M, N", [(1, 1), (3, 5), (4, 16)])
def test_layer_norm_backward_is_the_six_steps_of_its_docstring(backend, M, N):
    rng = np.random.default_rng(M * 100 + N)
    x, gamma, beta = rng.normal(size=(M, N)), rng.normal(size=N), rng.normal(size=N)
    gy = rng.normal(size=(M, N))
    inputs = [tensor(a, backend, requires_grad=True) for a in (x, gamma, beta)]
    y = mg.ops.layer_norm(inputs[0], (N,), inputs[1], inputs[2], eps=1e-5)
    y.backward(tensor(gy, backend))
    for got, expected in zip(inputs, layer_norm_backward_by_steps(x, gamma, gy, 1e-5)):
        np.testing.assert_allclose(mg.backend.to_numpy(got.grad), expected, rtol=1e-9, atol=1e-12)


def cross_entropy_backward_by_steps(logits, target, eps):
    """Steps 1-3 of nn_cross_entropy.py's docstring, summed over N examples."""
    N, C = logits.shape
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    q = (1 - eps) * np.eye(C)[target] + eps / C                        # the smoothed target
    d_log_p = np.eye(C)[None, :, :] - p[:, None, :]                    # 1. (N, c, j): delta_cj - p_j
    g = -(q[:, :, None] * d_log_p).sum(axis=1)                         # 2. -sum_c q_c (delta_cj - p_j)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)                     # 3. q is a distribution
    np.testing.assert_allclose(g, p - q, atol=1e-12)                   # ... so the sum is p - q
    return g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_gradient_is_the_three_steps_of_its_docstring(backend, eps):
    rng = np.random.default_rng(7)
    N, C = 5, 6
    logits, target = rng.normal(size=(N, C)) * 3, rng.integers(0, C, N)
    x = tensor(logits, backend, requires_grad=True)
    mg.cross_entropy(x, tensor(target, backend), label_smoothing=eps, reduction="sum").backward()
    np.testing.assert_allclose(mg.backend.to_numpy(x.grad), cross_entropy_backward_by_steps(logits, target, eps),
                               rtol=1e-9, atol=1e-12)
