"""The basic layers of minigrad/nn: Linear, Embedding, Dropout, LayerNorm, activations.

Each layer's forward against NumPy computing the same formula, on every backend;
padding_idx rows; dropout's statistics; float64 gradient checks with respect to the
input and every parameter, with several leading axes; the shapes in the docstrings;
initialization distributions (statistical checks many standard errors wide, seeded,
so they cannot flake but catch a wrong distribution or bound); errors for bad input;
and each layer loaded with a PyTorch layer's weights giving the same outputs and the
same input and parameter gradients (skipped without torch).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.backend import to_numpy
from helpers import BACKENDS, check_grad, tensor

SIGMAS = 6          # statistical tolerances: this many standard errors (p ~ 1e-9 per check)


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, dtype=np.float64, seed=0):
    return rng(seed).standard_normal(shape).astype(dtype)


def make(backend, factory, dtype="float32", seed=0):
    """A layer built on ``backend`` (seeded), in ``dtype``."""
    mg.manual_seed(seed)
    with mg.use_backend(backend):
        return factory().to(dtype)


def randomize(layer, seed=1):
    """Load random values into every parameter (so ones/zeros initializations hide nothing)."""
    state = {k: randn(*v.shape, dtype=v.dtype, seed=seed + i) for i, (k, v) in enumerate(layer.state_dict().items())}
    layer.load_state_dict(state)
    return state


def params_with_grad(layer, backend, x, gy):
    """Forward, backward along ``gy``, and the parameters' gradients by name."""
    y = layer(x)
    y.backward(tensor(gy, backend))
    return y, {name: to_numpy(p.grad) for name, p in layer.named_parameters()}


# -- NumPy references -------------------------------------------------------------------

def np_layer_norm(x, k, weight, bias, eps):
    """Over the last k axes: biased variance (divide by N), eps inside the square root."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y if weight is None else y * weight + bias


def np_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# -- Linear ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape", [(4,), (2, 4), (2, 3, 4), (0, 4), (2, 1, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_is_x_wt_plus_b_for_any_leading_axes(backend, x_shape, bias):
    linear = make(backend, lambda: nn.Linear(4, 3, bias=bias), "float64")
    state = randomize(linear)
    x = randn(*x_shape)
    expected = x @ state["weight"].T + (state["bias"] if bias else 0.0)
    y = linear(tensor(x, backend))
    assert y.shape == x_shape[:-1] + (3,) and y.backend == backend
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_linear_without_bias_has_only_a_weight():
    linear = nn.Linear(4, 3, bias=False)
    assert linear.bias is None and [name for name, _ in linear.named_parameters()] == ["weight"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape", [(2, 5), (5,), (), (2, 4, 1)])
def test_linear_refuses_an_input_of_the_wrong_width(backend, x_shape):
    linear = make(backend, lambda: nn.Linear(4, 3))
    got = str(x_shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"expected input \(\.\.\., 4\) for a weight of shape \(3, 4\), got {got}"):
        linear(tensor(np.zeros(x_shape, np.float32), backend))


def test_linear_with_no_input_features_outputs_its_zero_bias():
    linear = nn.Linear(0, 3)
    np.testing.assert_array_equal(linear(mg.zeros(2, 0)).numpy(), np.zeros((2, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape", [(4,), (2, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck_input_weight_bias(backend, x_shape, bias):
    linear = make(backend, lambda: nn.Linear(4, 3, bias=bias), "float64")
    x = tensor(randn(*x_shape), backend, requires_grad=True)
    check_grad(lambda x, *params: linear(x), [x, *linear.parameters()])


# -- Embedding ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("indices", [np.array(2), np.array([4, 0, 4]), np.array([[1, 2, 3], [3, 3, 0]])])
def test_embedding_looks_up_rows(backend, indices):
    embedding = make(backend, lambda: nn.Embedding(5, 3))
    y = embedding(tensor(indices, backend))
    assert y.shape == indices.shape + (3,) and y.backend == backend
    np.testing.assert_array_equal(y.numpy(), embedding.weight.numpy()[indices])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding_idx", [0, 2, -1, -6])
def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient(backend, padding_idx):
    V, D = 6, 3
    embedding = make(backend, lambda: nn.Embedding(V, D, padding_idx=padding_idx), "float64")
    pad = padding_idx % V
    assert embedding.padding_idx == pad
    weight = embedding.weight.numpy()
    np.testing.assert_array_equal(weight[pad], np.zeros(D))
    assert np.all(np.delete(weight, pad, axis=0) != 0)
    indices = np.array([[1, pad, 3], [3, 3, pad], [pad, 4, 1]])
    gy = randn(3, 3, D)
    y, grads = params_with_grad(embedding, backend, tensor(indices, backend), gy)
    np.testing.assert_array_equal(y.numpy()[indices == pad], 0.0)
    expected = np.zeros((V, D))
    np.add.at(expected, indices.reshape(-1), gy.reshape(-1, D))     # repeated rows add up
    expected[pad] = 0.0
    np.testing.assert_allclose(grads["weight"], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding_idx", [6, -7, 100])
def test_embedding_refuses_a_padding_idx_out_of_range(padding_idx):
    with pytest.raises(ValueError, match=rf"padding_idx must be in \[-6, 6\), got {padding_idx}"):
        nn.Embedding(6, 3, padding_idx=padding_idx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [[0, 5], [-1, 2], [[7]]])
def test_embedding_refuses_indices_out_of_range(backend, bad):
    embedding = make(backend, lambda: nn.Embedding(5, 3))
    with pytest.raises(IndexError, match=r"indices must be in \[0, 5\) for 5 embeddings"):
        embedding(tensor(np.array(bad), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_refuses_float_indices(backend):
    embedding = make(backend, lambda: nn.Embedding(5, 3))
    with pytest.raises(TypeError, match="expected integer indices, got dtype float32"):
        embedding(tensor(np.array([1.0, 2.0], np.float32), backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding_idx", [None, 4])
def test_embedding_gradcheck_weight(backend, padding_idx):
    # the padding row (index 4) is left out of the indices: it is read but, by design, gets no gradient
    embedding = make(backend, lambda: nn.Embedding(5, 3, padding_idx=padding_idx), "float64")
    indices = tensor(np.array([[[0, 2, 2], [3, 1, 0]], [[1, 1, 1], [2, 3, 0]]]), backend)
    check_grad(lambda weight: embedding(indices), [embedding.weight])


# -- Dropout ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_is_the_identity_in_eval(backend, p):
    dropout = make(backend, lambda: nn.Dropout(p)).eval()
    x = randn(4, 5, dtype=np.float32)
    np.testing.assert_array_equal(dropout(tensor(x, backend)).numpy(), x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_in_training_zeros_about_p_and_scales_the_rest(backend, p):
    n = 20_000
    dropout = make(backend, lambda: nn.Dropout(p))
    x = tensor(np.ones((4, n // 4), np.float32), backend, requires_grad=True)
    y = dropout(x)
    gy = randn(*x.shape, dtype=np.float32)
    y.backward(tensor(gy, backend))
    y = y.numpy()
    kept = y != 0
    assert abs((~kept).mean() - p) < SIGMAS * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(x.grad), gy * kept / (1 - p), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_p_zero_keeps_and_p_one_drops_everything_in_training(backend):
    x = randn(3, 4, dtype=np.float32)
    np.testing.assert_array_equal(make(backend, lambda: nn.Dropout(0.0))(tensor(x, backend)).numpy(), x)
    np.testing.assert_array_equal(make(backend, lambda: nn.Dropout(1.0))(tensor(x, backend)).numpy(), 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5, 2])
def test_dropout_refuses_p_outside_zero_one(p):
    with pytest.raises(ValueError, match=rf"p must be a probability in \[0, 1\], got {p}"):
        nn.Dropout(p)


# -- LayerNorm -----------------------------------------------------------------------------

LAYER_NORM_CASES = [            # normalized_shape as given, input shape
    (4, (2, 3, 4)), ((4,), (4,)), ([3, 4], (2, 3, 4)), ((2, 3, 4), (2, 2, 3, 4)), (2, (5, 2)),
    (1, (3, 1)), (3, (0, 3)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalized_shape, x_shape", LAYER_NORM_CASES)
def test_layer_norm_matches_the_numpy_formula(backend, normalized_shape, x_shape):
    # eps = 0.3 and N as small as 2 make eps outside the root, or the unbiased variance, visible
    norm = make(backend, lambda: nn.LayerNorm(normalized_shape, eps=0.3), "float64")
    state = randomize(norm)
    x = randn(*x_shape)
    k = len(norm.normalized_shape)
    y = norm(tensor(x, backend))
    assert y.shape == x_shape and norm.weight.shape == x_shape[len(x_shape) - k:]
    np.testing.assert_allclose(y.numpy(), np_layer_norm(x, k, state["weight"], state["bias"], 0.3),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_without_affine_has_no_parameters_and_only_normalizes(backend):
    norm = make(backend, lambda: nn.LayerNorm((3, 4), elementwise_affine=False), "float64")
    assert list(norm.parameters()) == [] and norm.state_dict() == {}
    assert norm.weight is None and norm.bias is None
    x = randn(2, 3, 4)
    np.testing.assert_allclose(norm(tensor(x, backend)).numpy(), np_layer_norm(x, 2, None, None, 1e-5),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_without_bias_has_only_a_weight(backend):
    norm = make(backend, lambda: nn.LayerNorm(4, bias=False), "float64")
    assert [name for name, _ in norm.named_parameters()] == ["weight"]
    state = randomize(norm)
    x = randn(2, 4)
    np.testing.assert_allclose(norm(tensor(x, backend)).numpy(), np_layer_norm(x, 1, state["weight"], 0.0, 1e-5),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape", [(2, 4, 3), (3,), (2, 3, 1)])
def test_layer_norm_refuses_the_wrong_trailing_shape(backend, x_shape):
    norm = make(backend, lambda: nn.LayerNorm((3, 4)))
    with pytest.raises(ValueError, match=rf"expected input with trailing shape \(3, 4\), got \({x_shape[0]},"):
        norm(tensor(np.zeros(x_shape, np.float32), backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalized_shape, x_shape", [(4, (2, 3, 4)), ((3, 4), (2, 3, 4)), (4, (4,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_gradcheck_input_weight_bias(backend, normalized_shape, x_shape, affine):
    norm = make(backend, lambda: nn.LayerNorm(normalized_shape, elementwise_affine=affine), "float64")
    randomize(norm)
    x = tensor(randn(*x_shape), backend, requires_grad=True)
    check_grad(lambda x, *params: norm(x), [x, *norm.parameters()])


# -- activations ----------------------------------------------------------------------------

ACTIVATIONS = [
    pytest.param(nn.ReLU, lambda x: np.maximum(x, 0), id="ReLU"),
    pytest.param(nn.GELU, np_gelu, id="GELU"),
    pytest.param(lambda: nn.GELU(approximate="tanh"), np_gelu_tanh, id="GELU-tanh"),
    pytest.param(nn.Tanh, np.tanh, id="Tanh"),
    pytest.param(nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x)), id="Sigmoid"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("factory, reference", ACTIVATIONS)
def test_activation_modules_match_numpy_and_have_no_parameters(backend, factory, reference):
    activation = make(backend, factory)
    assert list(activation.parameters()) == []
    x = randn(2, 3, 4) * 3
    np.testing.assert_allclose(activation(tensor(x, backend)).numpy(), reference(x), rtol=1e-12, atol=1e-12)
    check_grad(activation, [tensor(x + 0.01, backend, requires_grad=True)])    # + 0.01: no x at ReLU's kink


# -- shapes written in the docstrings ---------------------------------------------------------

DOCUMENTED_SHAPES = [   # layer, docstring lines, input shape, output shape, parameter shapes
    (lambda: nn.Linear(4, 3), ["input x: (..., in_features)", "output y: (..., out_features)",
                               "weight W: (out_features, in_features); bias b: (out_features,)"],
     (2, 5, 4), (2, 5, 3), {"weight": (3, 4), "bias": (3,)}),
    (lambda: nn.Embedding(7, 3), ["input indices: (...)", "output y: (..., embedding_dim)",
                                  "weight W: (num_embeddings, embedding_dim)"],
     (2, 5), (2, 5, 3), {"weight": (7, 3)}),
    (lambda: nn.LayerNorm((3, 4)), ["input, output: (..., *normalized_shape)", "weight, bias: normalized_shape"],
     (2, 5, 3, 4), (2, 5, 3, 4), {"weight": (3, 4), "bias": (3, 4)}),
    (lambda: nn.Dropout(0.5), ["input and output any shape, the same"], (2, 5, 3), (2, 5, 3), {}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("factory, lines, x_shape, y_shape, param_shapes", DOCUMENTED_SHAPES,
                         ids=["Linear", "Embedding", "LayerNorm", "Dropout"])
def test_docstring_shapes_are_the_observed_shapes(backend, factory, lines, x_shape, y_shape, param_shapes):
    layer = make(backend, factory)
    doc = " ".join(type(layer).__doc__.split())
    for line in lines:
        assert line in doc
    x = np.zeros(x_shape, np.int64) if isinstance(layer, nn.Embedding) else randn(*x_shape, dtype=np.float32)
    assert layer(tensor(x, backend)).shape == y_shape
    assert {name: p.shape for name, p in layer.named_parameters()} == param_shapes


# -- initialization distributions --------------------------------------------------------------

def assert_uniform(values, bound):
    """``values`` look like U(-bound, bound): inside the bound, reaching it, centred,
    variance bound^2 / 3, half of them inside bound / 2 (tolerances SIGMAS standard errors)."""
    v = values.astype(np.float64).ravel()
    n = v.size
    assert np.all(np.abs(v) <= bound)
    # P(max |v| < bound (1 - 20/n)) = (1 - 20/n)^n < e^-20
    assert np.abs(v).max() > bound * (1 - 20 / n)
    assert abs(v.mean()) < SIGMAS * bound / math.sqrt(3 * n)
    # Var(v^2) = E v^4 - (E v^2)^2 = bound^4 (1/5 - 1/9)
    assert abs((v ** 2).mean() - bound ** 2 / 3) < SIGMAS * bound ** 2 * math.sqrt(4 / 45 / n)
    assert abs((np.abs(v) < bound / 2).mean() - 0.5) < SIGMAS * 0.5 / math.sqrt(n)


def assert_normal(values, mean, std):
    """``values`` look like N(mean, std^2): mean, std, and 68.27% within one std."""
    v = values.astype(np.float64).ravel()
    n = v.size
    assert abs(v.mean() - mean) < SIGMAS * std / math.sqrt(n)
    assert abs(v.std() / std - 1) < SIGMAS / math.sqrt(2 * n)
    inside = math.erf(1 / math.sqrt(2))                        # 0.6827 (a uniform of this std: 0.577)
    assert abs((np.abs(v - mean) < std).mean() - inside) < SIGMAS * math.sqrt(inside * (1 - inside) / n)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(lead=st.lists(st.integers(0, 3), max_size=3), n_in=st.integers(0, 4), n_out=st.integers(1, 4),
       bias=st.booleans(), needs=st.sampled_from([(True, True, True), (True, False, False), (False, True, True),
                                                   (False, False, True)]),
       through_sum=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_linear_op_equals_its_composed_oracle(backend, lead, n_in, n_out, bias, needs, through_sum, seed):
    """ops/nn_linear.py against matmul + transpose + add: values and the gradient of every
    input that asks for one (only those), also along a broadcast upstream (a sum's backward)."""
    from minigrad.nn.functional import linear, linear_composed
    r = rng(seed)
    arrays = [r.standard_normal((*lead, n_in)), r.standard_normal((n_out, n_in)), r.standard_normal(n_out)]
    upstream = r.standard_normal((*lead, n_out))
    results = []
    for function in (linear, linear_composed):
        inputs = [tensor(a, backend, requires_grad=need) for a, need in zip(arrays, needs)]
        y = function(*inputs[:2], inputs[2] if bias else None)
        if any(needs[:3 if bias else 2]):
            (y.sum() if through_sum else y).backward(None if through_sum else tensor(upstream, backend))
        grads = [None if x.grad is None else to_numpy(x.grad) for x in inputs]
        results.append([y.numpy(), *grads])
    for fused, composed in zip(*results):
        assert (fused is None) == (composed is None)
        if fused is not None:
            np.testing.assert_allclose(fused, composed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_weight_and_bias_are_uniform_within_one_over_sqrt_in_features(backend):
    linear = make(backend, lambda: nn.Linear(256, 512))        # in != out: the wrong fan shows
    assert_uniform(linear.weight.numpy(), 1 / math.sqrt(256))
    assert_uniform(linear.bias.numpy(), 1 / math.sqrt(256))
    assert linear.weight.dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_weight_is_standard_normal(backend):
    assert_normal(make(backend, lambda: nn.Embedding(1000, 64)).weight.numpy(), 0.0, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_starts_as_ones_and_zeros(backend):
    norm = make(backend, lambda: nn.LayerNorm((3, 4)))
    np.testing.assert_array_equal(norm.weight.numpy(), np.ones((3, 4)))
    np.testing.assert_array_equal(norm.bias.numpy(), np.zeros((3, 4)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, fan_in, fan_out", [((300, 200), 200, 300), ((40, 6, 5), 30, 200)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_uniform_bound_is_gain_sqrt_six_over_fans(backend, shape, fan_in, fan_out, gain):
    mg.manual_seed(0)
    with mg.use_backend(backend):
        weight = mg.zeros(*shape)
    assert nn.init.fan_in_and_fan_out(weight) == (fan_in, fan_out)
    assert nn.init.xavier_uniform_(weight, gain=gain) is weight
    assert_uniform(weight.numpy(), gain * math.sqrt(6 / (fan_in + fan_out)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a", [0.0, math.sqrt(5)])
def test_kaiming_uniform_bound_is_sqrt_six_over_one_plus_a_squared_fan_in(backend, a):
    mg.manual_seed(0)
    with mg.use_backend(backend):
        weight = mg.zeros(300, 200)
    nn.init.kaiming_uniform_(weight, a=a)
    assert_uniform(weight.numpy(), math.sqrt(6 / ((1 + a * a) * 200)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_and_normal_fill_in_place_keeping_dtype(backend, dtype):
    mg.manual_seed(0)
    with mg.use_backend(backend):
        a, b = mg.zeros(200, 300, dtype=dtype), mg.zeros(200, 300, dtype=dtype)
    nn.init.uniform_(a, -0.5, 0.5)
    nn.init.normal_(b, mean=2.0, std=3.0)
    assert a.dtype == b.dtype == np.dtype(dtype) and a.backend == b.backend == backend
    assert_uniform(a.numpy(), 0.5)
    assert_normal(b.numpy(), 2.0, 3.0)


def test_fan_in_and_fan_out_needs_two_dims():
    with pytest.raises(ValueError, match=r"need a tensor of 2 or more dims, got shape \(5,\)"):
        nn.init.xavier_uniform_(mg.zeros(5))


def test_manual_seed_makes_initialization_repeatable():
    first = make("numpy", lambda: nn.Linear(3, 4), seed=7).state_dict()
    second = make("numpy", lambda: nn.Linear(3, 4), seed=7).state_dict()
    other = make("numpy", lambda: nn.Linear(3, 4), seed=8).state_dict()
    np.testing.assert_array_equal(first["weight"], second["weight"])
    assert not np.array_equal(first["weight"], other["weight"])


# -- PyTorch --------------------------------------------------------------------------------------

TORCH_TOLERANCES = [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)]


def assert_same_as_torch(torch, reference, layer, backend, x, rtol, atol):
    """``layer`` loaded with ``reference``'s weights: same output, and the same input and
    parameter gradients under one random upstream gradient."""
    torch.manual_seed(0)
    for p in reference.parameters():               # PyTorch's ones/zeros would hide a swapped gamma and beta
        with torch.no_grad():
            p.add_(torch.randn_like(p))
    layer.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    floating = x.dtype.kind == "f"
    x_torch = torch.from_numpy(x).requires_grad_(floating)
    y_torch = reference(x_torch)
    gy = randn(*y_torch.shape, dtype=x.dtype if floating else layer.weight.dtype, seed=3)
    y_torch.backward(torch.from_numpy(gy))
    x_ours = tensor(x, backend, requires_grad=floating)
    y_ours, grads = params_with_grad(layer, backend, x_ours, gy)
    assert y_ours.dtype == layer.weight.dtype
    np.testing.assert_allclose(y_ours.numpy(), y_torch.detach().numpy(), rtol=rtol, atol=atol)
    if floating:
        np.testing.assert_allclose(to_numpy(x_ours.grad), x_torch.grad.numpy(), rtol=rtol, atol=atol)
    assert sorted(grads) == sorted(name for name, _ in reference.named_parameters())
    for name, p in reference.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol, atol", TORCH_TOLERANCES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_pytorch(backend, dtype, rtol, atol, bias):
    torch = pytest.importorskip("torch")
    reference = torch.nn.Linear(4, 3, bias=bias).to(getattr(torch, dtype))
    layer = make(backend, lambda: nn.Linear(4, 3, bias=bias), dtype)
    assert_same_as_torch(torch, reference, layer, backend, randn(2, 5, 4, dtype=dtype), rtol, atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol, atol", TORCH_TOLERANCES)
@pytest.mark.parametrize("padding_idx", [None, 1, -2])
def test_embedding_matches_pytorch(backend, dtype, rtol, atol, padding_idx):
    torch = pytest.importorskip("torch")
    reference = torch.nn.Embedding(7, 4, padding_idx=padding_idx).to(getattr(torch, dtype))
    layer = make(backend, lambda: nn.Embedding(7, 4, padding_idx=padding_idx), dtype)
    indices = np.array([[1, 0, 5, 5, 1], [6, 1, 2, 5, 3], [0, 0, 4, 1, 1]])
    assert_same_as_torch(torch, reference, layer, backend, indices, rtol, atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol, atol", TORCH_TOLERANCES)
@pytest.mark.parametrize("normalized_shape, x_shape", [(4, (2, 5, 4)), ((3, 4), (2, 3, 4)), (4, (4,))])
def test_layer_norm_matches_pytorch(backend, dtype, rtol, atol, normalized_shape, x_shape):
    torch = pytest.importorskip("torch")
    reference = torch.nn.LayerNorm(normalized_shape, eps=1e-3).to(getattr(torch, dtype))
    layer = make(backend, lambda: nn.LayerNorm(normalized_shape, eps=1e-3), dtype)
    assert_same_as_torch(torch, reference, layer, backend, randn(*x_shape, dtype=dtype), rtol, atol)
