"""minigrad for someone coming from PyTorch: PyTorch's spellings beside NumPy's.

- ``import minigrad as mg`` gives ``mg.nn``, ``mg.optim``, ``mg.data`` (checked in a
  fresh interpreter, where nothing else imported them);
- each PyTorch spelling (``dim=``, ``keepdim=``, ``x.size()``, ``x.view``,
  ``x.unsqueeze``, ``x.flatten``, ``x.argmax``, ``x.clone``, ``mg.cat``, ``F.mse_loss``,
  ``nn.CrossEntropyLoss``, ...) is run as the same source text in minigrad and in
  PyTorch, and both the results and the gradients (along a random upstream gradient)
  must agree (skipped without torch); the dim spelling also equals the axis spelling;
- giving both ``axis`` and ``dim`` (or ``keepdims`` and ``keepdim``) is a TypeError;
- the divergences the README's table names behave as it says;
- ``.to("cpu")`` / ``.to("cuda")`` mean the NumPy / CuPy backends;
- integer inputs to float ops and layers take the float operand's dtype (float32
  when none is float): never NumPy's silent float64;
- ``mg.Tensor`` of strings, objects or None, and ``gradcheck`` of a function that
  returns a non-Tensor, raise one clear error naming what came.
"""
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.backend import BackendError, backend_by_name
from minigrad.nn import functional as F
from helpers import BACKENDS, assert_close, check_grad, tensor


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- import minigrad as mg -----------------------------------------------------------

def _fresh_python(code):
    """Run ``code`` in a new interpreter from the repository root; its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_minigrad_gives_nn_optim_and_data_in_a_fresh_interpreter():
    out = _fresh_python(
        "import minigrad as mg\n"
        "print(mg.nn.Linear.__name__, mg.optim.Adam.__name__, mg.data.make_task.__name__)\n"
        "print(mg.nn.functional.mse_loss.__name__)\n"
        "from minigrad import nn, optim, data\n"
        "print(nn is mg.nn, optim is mg.optim, data is mg.data)\n"
    )
    assert out.split() == ["Linear", "Adam", "make_task", "mse_loss", "True", "True", "True"]


def test_the_subpackages_load_on_first_use_so_import_minigrad_stays_light():
    out = _fresh_python(
        "import sys, minigrad as mg\n"
        "print(sorted(m for m in ('minigrad.nn', 'minigrad.optim', 'minigrad.data') if m in sys.modules))\n"
        "print({'nn', 'optim', 'data'} <= set(dir(mg)))\n"
        "mg.optim\n"
        "print(sorted(m for m in ('minigrad.nn', 'minigrad.optim', 'minigrad.data') if m in sys.modules))\n"
    )
    assert out.splitlines() == ["[]", "True", "['minigrad.optim']"]


def test_an_unknown_attribute_of_minigrad_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="minigrad.*no attribute 'nope'"):
        mg.nope


# -- the same source text in minigrad and PyTorch -----------------------------------------
# x (2, 3, 4) and y (2, 3, 4) float64; s (1, 3, 1, 2) for squeeze; z 0-d; logits (5, 4), t (5,).
# ``mod`` is minigrad or torch, ``F`` their functional modules, ``nn`` their nn.

TWINS = [
    # reductions with dim / keepdim
    "x.sum(dim=1)", "x.sum(dim=(0, 2), keepdim=True)", "x.sum(1, keepdim=True)", "mod.sum(x, dim=-1)",
    "x.mean(dim=-1)", "x.mean(dim=[0, 1], keepdim=True)", "mod.mean(x, dim=2, keepdim=True)",
    "x.max()", "x.min()", "x.max(dim=1)", "x.max(dim=-1, keepdim=True)", "x.min(dim=0)",
    "mod.max(x, dim=1)", "mod.min(x, dim=2, keepdim=True)", "x.max(dim=1).values", "x.min(dim=2)[1]",
    "x.var(dim=1)", "x.var(dim=1, keepdim=True, correction=0)", "x.var(dim=2, unbiased=False)",
    "x.var(correction=1)", "mod.var(x, dim=0)", "x.logsumexp(dim=1)",
    "x.logsumexp(dim=(1, 2), keepdim=True)", "mod.logsumexp(x, dim=-1)",
    "x.argmax()", "x.argmax(dim=1)", "x.argmax(dim=-1, keepdim=True)", "x.argmin(dim=2)",
    "mod.argmax(x, dim=1)", "mod.argmin(x)",
    # softmax family
    "x.softmax(dim=1)", "x.log_softmax(dim=0)", "mod.softmax(x, dim=-1)", "mod.log_softmax(x, dim=1)",
    "F.softmax(x, dim=1)", "F.log_softmax(x, dim=-1)",
    # shapes
    "x.unsqueeze(0)", "x.unsqueeze(dim=-1)", "x.unsqueeze(2)", "mod.unsqueeze(x, 1)",
    "x.flatten()", "x.flatten(1)", "x.flatten(0, 1)", "x.flatten(start_dim=-2, end_dim=-1)",
    "x.flatten(1, 1)", "z.flatten()", "mod.flatten(x, 1)", "mod.flatten(x, start_dim=0, end_dim=1)",
    "x.view(6, 4)", "x.view(-1)", "x.view((4, 6))", "x.view(2, -1, 2)",
    "x.size()", "x.size(1)", "x.size(dim=-1)", "x.dim()", "x.numel()",
    "x.transpose(1, 2)", "x.transpose(-1, 0)", "x.transpose(dim0=0, dim1=2)", "mod.swapaxes(x, 0, 2)",
    "x.permute(2, 0, 1)", "x.permute((1, 2, 0))",
    "s.squeeze()", "s.squeeze(0)", "s.squeeze(dim=0)", "s.squeeze(dim=1)", "s.squeeze(dim=(0, 2))",
    "mod.squeeze(s, dim=2)",
    "mod.cat([x, y], dim=1)", "mod.cat([x, y], -1)", "mod.cat((x, y))", "mod.concatenate([x, y], axis=2)",
    "mod.stack([x, y], dim=1)", "mod.stack([x, y], -1)",
    # copies and conversions
    "x.clone()", "mod.clone(x)", "x.long()", "x.float()", "x.double()",
    # losses
    "F.mse_loss(x, y)", "F.mse_loss(x, y, reduction='sum')", "F.mse_loss(x, y, reduction='none')",
    "nn.MSELoss()(x, y)", "nn.MSELoss(reduction='sum')(x, y)",
    "nn.CrossEntropyLoss()(logits, t)", "nn.CrossEntropyLoss(reduction='sum')(logits, t)",
    "nn.CrossEntropyLoss(ignore_index=1, label_smoothing=0.1)(logits, t)",
    "nn.CrossEntropyLoss(reduction='none')(logits, t)",
]


def _minigrad_namespace(backend):
    arrays = _twin_arrays()
    names = {k: tensor(v, backend, requires_grad=v.dtype.kind == "f") for k, v in arrays.items()}
    return dict(names, mod=mg, F=F, nn=nn)


def _torch_namespace(torch):
    arrays = _twin_arrays()
    names = {k: torch.tensor(v, requires_grad=v.dtype.kind == "f") for k, v in arrays.items()}
    return dict(names, mod=torch, F=torch.nn.functional, nn=torch.nn)


def _twin_arrays():
    return {"x": randn(2, 3, 4, seed=1), "y": randn(2, 3, 4, seed=2), "s": randn(1, 3, 1, 2, seed=3),
            "logits": randn(5, 4, seed=4), "t": np.array([0, 3, 1, 1, 2]), "z": np.array(0.7)}


def _as_host(result):
    """A minigrad or torch result as a list of NumPy arrays (a tuple result gives several)."""
    if isinstance(result, tuple) and not _is_shape(result):           # (values, indices)
        return [a for part in result for a in _as_host(part)]
    if isinstance(result, mg.Tensor):
        return [result.numpy()]
    if hasattr(result, "detach"):                                     # a torch tensor
        return [result.detach().numpy()]
    return [np.asarray(tuple(result) if _is_shape(result) else result)]


def _is_shape(result):
    return isinstance(result, tuple) and all(isinstance(n, int) for n in result) and \
        not hasattr(result, "values")


def _differentiable(result):
    """The float tensor a backward can start from (the values of (values, indices)), or None."""
    first = result[0] if isinstance(result, tuple) and not _is_shape(result) else result
    return first if getattr(first, "requires_grad", False) else None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", TWINS)
def test_a_pytorch_spelling_gives_pytorchs_result_and_gradient(call, backend):
    torch = pytest.importorskip("torch")
    ours, theirs = _minigrad_namespace(backend), _torch_namespace(torch)
    got, want = eval(call, ours), eval(call, theirs)
    got_arrays, want_arrays = _as_host(got), _as_host(want)
    assert len(got_arrays) == len(want_arrays)
    for g, w in zip(got_arrays, want_arrays):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)

    y_ours, y_theirs = _differentiable(got), _differentiable(want)
    assert (y_ours is None) == (y_theirs is None)
    if y_ours is None:
        return
    gy = randn(*y_theirs.shape, seed=9).astype(y_ours.dtype)
    y_ours.backward(tensor(gy, backend))
    y_theirs.backward(torch.tensor(gy))
    for name in ("x", "y", "s", "logits", "z"):
        if theirs[name].grad is not None:
            assert_close(ours[name].grad, theirs[name].grad.numpy(), rtol=1e-12, atol=1e-12)
        else:
            assert ours[name].grad is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pytorch_call, numpy_call", [
    ("x.sum(dim=1, keepdim=True)", "x.sum(axis=1, keepdims=True)"),
    ("mg.sum(x, dim=(0, 2))", "mg.sum(x, axis=(0, 2))"),
    ("x.mean(dim=-1, keepdim=True)", "x.mean(axis=-1, keepdims=True)"),
    ("x.max(dim=1, keepdim=True).values", "x.max(axis=1, keepdims=True)"),
    ("x.min(dim=2).values", "x.min(axis=2)"),
    ("x.var(dim=1, correction=0)", "x.var(axis=1)"),
    ("x.var(dim=1)", "x.var(axis=1, ddof=1)"),
    ("mg.logsumexp(x, dim=0, keepdim=True)", "mg.logsumexp(x, axis=0, keepdims=True)"),
    ("mg.softmax(x, dim=1)", "mg.softmax(x, axis=1)"),
    ("mg.log_softmax(x, dim=0)", "mg.log_softmax(x, axis=0)"),
    ("x.argmax(dim=2, keepdim=True)", "x.argmax(axis=2, keepdims=True)"),
    ("mg.cat([x, x], dim=2)", "mg.concatenate([x, x], axis=2)"),
    ("mg.stack([x, x], dim=-1)", "mg.stack([x, x], axis=-1)"),
    ("x.unsqueeze(1)", "mg.expand_dims(x, 1)"),
    ("x.view(3, 8)", "x.reshape(3, 8)"),
    ("x.flatten(1)", "x.reshape(2, 12)"),
    ("x.transpose(0, 2)", "x.swapaxes(0, 2)"),
])
def test_the_pytorch_spelling_equals_the_numpy_spelling(pytorch_call, numpy_call, backend):
    x = tensor(randn(2, 3, 4), backend)
    got, want = eval(pytorch_call, {"x": x, "mg": mg}), eval(numpy_call, {"x": x, "mg": mg})
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_with_dim_send_the_gradient_to_the_returned_index(name, backend):
    x = tensor(randn(3, 4, 2), backend, requires_grad=True)
    check_grad(lambda t: getattr(t, name)(dim=1).values, [x])
    ties = tensor(np.array([[1.0, 3.0, 3.0, 0.0], [-2.0, -2.0, 5.0, -2.0]]), backend, requires_grad=True)
    values, indices = getattr(ties, name)(dim=1)
    values.backward(tensor(np.array([1.0, 1.0]), backend))
    expected = np.zeros((2, 4))
    expected[[0, 1], indices.numpy()] = 1.0             # one element per row, as torch.max(x, dim)
    np.testing.assert_array_equal(mg.backend.to_numpy(ties.grad), expected)
    assert indices.numpy().tolist() == ([1, 2] if name == "max" else [3, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_without_dim_shares_the_gradient_among_ties_as_max_does(backend):
    x = tensor(np.array([2.0, 1.0, 1.0, 4.0]), backend, requires_grad=True)
    x.min().backward()
    np.testing.assert_array_equal(mg.backend.to_numpy(x.grad), [0.0, 0.5, 0.5, 0.0])
    check_grad(lambda t: mg.min(t, axis=(0, 2)), [tensor(randn(2, 3, 2), backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_clone_is_a_differentiable_copy(backend):
    x = tensor(randn(2, 3), backend, requires_grad=True)
    y = x.clone()
    y.data[0, 0] = 100.0
    assert float(x.data[0, 0]) != 100.0                     # a copy, not a view
    check_grad(lambda t: t.clone() * t, [x])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", [
    "x.flatten(1)", "x.unsqueeze(-1)", "x.view(4, 6)", "x.transpose(0, 2)", "x.permute(1, 2, 0)",
    "mg.cat([x, x * 2], dim=1)", "mg.stack([x, x * 2], dim=-1)", "x.var(dim=1)",
    "F.mse_loss(x, x * x)", "F.mse_loss(x, target, reduction='none')",
])
def test_gradcheck_of_the_pytorch_spellings(call, backend):
    x = tensor(randn(2, 3, 4), backend, requires_grad=True)
    target = tensor(randn(2, 3, 4, seed=5), backend)
    check_grad(lambda t: eval(call, {"x": t, "target": target, "mg": mg, "F": F}), [x])


# -- errors: both spellings at once, and the ambiguous 2-D transpose ----------------------

@pytest.mark.parametrize("call", [
    "x.sum(axis=1, dim=1)", "x.mean(axis=0, dim=1)", "x.max(axis=1, dim=1)", "x.min(axis=0, dim=0)",
    "x.var(axis=1, dim=1)", "x.argmax(axis=0, dim=0)", "x.sum(keepdims=True, keepdim=True)",
    "mg.logsumexp(x, axis=0, dim=0)", "mg.softmax(x, axis=0, dim=1)", "mg.log_softmax(x, axis=0, dim=1)",
    "mg.cat([x, x], axis=1, dim=1)", "mg.stack([x, x], axis=1, dim=1)", "mg.squeeze(x, axis=0, dim=0)",
    "x.var(ddof=1, correction=1)", "x.var(correction=1, unbiased=True)",
])
def test_both_the_numpy_and_the_pytorch_name_of_one_argument_is_an_error(call):
    x = mg.Tensor(randn(2, 3, 4))
    with pytest.raises(TypeError, match=r"both .*=.* and .*=.*(PyTorch|one of them)"):
        eval(call, {"x": x, "mg": mg})


def test_transpose_of_two_axes_of_a_2d_tensor_in_place_is_ambiguous_and_refused():
    x = mg.Tensor(randn(2, 3))
    with pytest.raises(ValueError, match=r"ambiguous.*x\.T"):
        x.transpose(0, 1)                  # NumPy: unchanged; PyTorch: transposed
    assert x.transpose(1, 0).shape == (3, 2)                    # the same in both
    assert x.transpose((0, 1)).shape == (2, 3)                  # a tuple is NumPy's permutation


@pytest.mark.parametrize("call, message", [
    ("x.unsqueeze(3)", r"unsqueeze: dim 3 is out of range"),
    ("x.unsqueeze((0, 1))", r"unsqueeze: expected one dim"),
    ("x.flatten(1, 0)", r"flatten: start_dim 1 comes after end_dim 0"),
    ("x.flatten(0, 5)", r"flatten: .*out of range"),
    ("x.size(2)", r"size: dim 2 is out of range for a tensor of 2 dimensions"),
    ("x.view(4, 2)", r"cannot reshape a tensor of shape \(2, 3\) into \(4, 2\)"),
    ("x.max(dim=(0, 1))", r"max: dim= takes one dimension"),
    ("x.transpose(0, 1, 2)", r"transpose: axes \(0, 1, 2\) are not a permutation"),
    ("x.transpose(dim0=1)", r"transpose: expected either axes or both dim0 and dim1"),
    ("x.transpose(1, dim0=0, dim1=1)", r"transpose: expected either axes or both dim0 and dim1"),
])
def test_bad_pytorch_style_arguments_name_what_came(call, message):
    x = mg.Tensor(randn(2, 3))
    with pytest.raises((ValueError, TypeError, IndexError), match=message):
        eval(call, {"x": x})


# -- the divergences the README's table names -----------------------------------------

def test_positional_arguments_keep_numpys_meaning():
    x = mg.Tensor(randn(3, 4))
    assert isinstance(x.max(1), mg.Tensor) and x.max(1).shape == (3,)     # NumPy: the values only
    np.testing.assert_allclose(x.var(1).numpy(), x.numpy().var(axis=1))   # NumPy: divide by N
    np.testing.assert_allclose(x.var().numpy(), x.numpy().var())
    with pytest.raises(ValueError, match="squeeze: axis 0 of shape"):
        x.squeeze(0)                                                       # NumPy: refused


def test_the_size_attribute_is_numpys_count_and_called_pytorchs_shape():
    x = mg.Tensor(randn(2, 3, 4))
    assert x.size == 24 and x.size * 2 == 48 and x.numel() == 24           # NumPy's ndarray.size
    assert x.size() == (2, 3, 4) and x.size(-2) == 3                       # PyTorch's x.size()


def test_the_size_attribute_of_a_parameter_counts_its_elements():
    assert nn.Linear(3, 2).num_parameters() == 8


# -- backends under PyTorch's device names ----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_to_cpu_means_the_numpy_backend(backend):
    x = tensor(randn(2, 3), backend, requires_grad=True)
    y = x.to("cpu")
    assert y.backend == "numpy" and x.cpu().backend == "numpy"
    (y * 2).sum().backward()
    assert x.grad is not None and mg.backend.backend_of(x.grad).name == backend


def test_module_to_cpu_keeps_its_parameters_on_numpy():
    layer = nn.Linear(3, 2).to("cpu")
    assert {p.backend for p in layer.parameters()} == {"numpy"}


def _cupy_missing():
    try:
        backend_by_name("cupy")
        return False
    except BackendError:
        return True


@pytest.mark.skipif(not _cupy_missing(), reason="CuPy runs here")
def test_to_cuda_without_a_gpu_explains_cupy_not_an_unknown_name():
    for move in (lambda: mg.Tensor([1.0]).to("cuda"), lambda: mg.Tensor([1.0]).cuda(),
                 lambda: nn.Linear(2, 2).to("cuda")):
        with pytest.raises(BackendError, match=r"backend 'cupy' is not available"):
            move()


@pytest.mark.gpu
def test_to_cuda_means_the_cupy_backend():
    x = mg.Tensor(randn(2, 3), requires_grad=True)
    y = x.to("cuda")
    assert y.backend == "cupy" and x.cuda().backend == "cupy"
    layer = nn.Linear(3, 2).to("cuda")
    assert {p.backend for p in layer.parameters()} == {"cupy"}
    assert layer(y.detach().astype("float32")).to("cpu").backend == "numpy"


def test_an_unknown_device_name_lists_the_choices():
    with pytest.raises(TypeError, match=r"to: expected a backend .*'cpu'.*'cuda'.*'numpy'.* or a dtype, got 'tpu'"):
        mg.Tensor([1.0]).to("tpu")
    with pytest.raises(BackendError, match=r"unknown backend 'tpu'.*'cpu'.*'cuda'.*'numpy'"):
        mg.set_backend("tpu")


# -- losses as modules -----------------------------------------------------------------

def test_loss_modules_have_pytorchs_arguments_and_repr():
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    loss = nn.CrossEntropyLoss(ignore_index=0, reduction="none", label_smoothing=0.2)
    assert (loss.ignore_index, loss.reduction, loss.label_smoothing) == (0, "none", 0.2)
    assert list(loss.parameters()) == []


@pytest.mark.parametrize("make, message", [
    (lambda: nn.CrossEntropyLoss(weight=mg.ones(3)), r"CrossEntropyLoss: class weights .* not supported"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), r"reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: nn.MSELoss(reduction="avg"), r"reduction must be 'mean', 'sum' or 'none', got 'avg'"),
])
def test_loss_modules_refuse_what_they_cannot_do(make, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        make()


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_loss_is_the_mean_squared_difference(backend):
    a, b = randn(3, 4, seed=1), randn(3, 4, seed=2)
    x, y = tensor(a, backend, requires_grad=True), tensor(b, backend, requires_grad=True)
    assert_close(F.mse_loss(x, y), ((a - b) ** 2).mean(), rtol=1e-12)
    assert_close(F.mse_loss(x, y, reduction="sum"), ((a - b) ** 2).sum(), rtol=1e-12)
    assert_close(F.mse_loss(x, y, reduction="none"), (a - b) ** 2, rtol=1e-12)
    check_grad(lambda p, q: F.mse_loss(p, q), [x, y])


def test_mse_loss_refuses_shapes_that_differ_instead_of_broadcasting():
    with pytest.raises(ValueError, match=r"mse_loss: .*input of shape \(2, 3\).*target of shape \(3,\)"):
        F.mse_loss(mg.ones(2, 3), mg.ones(3))


# -- integer inputs to float ops and layers: the float operand's dtype, never float64 -------

INT = np.array([[1, 2, 3, 4], [0, -1, 5, 2]])


def _int_and_float(backend, dtype):
    """The integer input, and the same values already in ``dtype`` (the reference)."""
    return tensor(INT, backend), tensor(INT.astype(dtype), backend)


FLOAT_OPS = {        # op(x, w): x the integer input, w a float tensor (4, 4) of the dtype under test
    "matmul": lambda x, w: x @ w,
    "rmatmul": lambda x, w: w[:2, :2] @ x,
    "linear": lambda x, w: F.linear(x, w, w[0]),
    "linear_no_bias": lambda x, w: F.linear(x, w),
    "layer_norm": lambda x, w: F.layer_norm(x, (4,), w[0], w[1]),
    "layer_norm_weight_only": lambda x, w: F.layer_norm(x, (4,), w[0]),
    "mse_loss": lambda x, w: F.mse_loss(x, w[:2]),
    "mse_loss_float_input": lambda x, w: F.mse_loss(w[:2], x),
    "div": lambda x, w: x / w[:2],
    "rdiv": lambda x, w: w[:2] / x.clip(1, None),
    "sdpa": lambda x, w: F.scaled_dot_product_attention(x[None], w[None], w[None]),
    "sdpa_float_query": lambda x, w: F.scaled_dot_product_attention(w[None], x[None], x[None]),
    "mul": lambda x, w: x * w[:2],
    "maximum": lambda x, w: mg.maximum(x, w[:2]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(FLOAT_OPS))
def test_an_integer_input_takes_the_dtype_of_the_float_operand(name, dtype, backend):
    x, x_float = _int_and_float(backend, dtype)
    w = tensor(randn(4, 4).astype(dtype), backend, requires_grad=True)
    y = FLOAT_OPS[name](x, w)
    assert y.dtype == dtype
    assert_close(y, FLOAT_OPS[name](x_float, w).numpy(), rtol=1e-6, atol=1e-6)
    y.backward(tensor(np.ones(y.shape, dtype=dtype), backend))
    assert w.grad.dtype == dtype


INT_ONLY_OPS = {     # no float operand: float32, as for mg.exp of an integer tensor
    "div": lambda x: x / 2, "rdiv": lambda x: 1 / x.clip(1, None), "int_div_int": lambda x: x / x.clip(1, None),
    "layer_norm": lambda x: F.layer_norm(x, (4,)), "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: x.log_softmax(dim=0), "logsumexp": lambda x: x.logsumexp(dim=1),
    "mean": lambda x: x.mean(dim=0), "var": lambda x: x.var(dim=1), "sdpa": lambda x: F.scaled_dot_product_attention(x, x, x),
    "dropout": lambda x: F.dropout(x, 0.5), "dropout_eval": lambda x: F.dropout(x, 0.5, training=False),
    "mse_loss": lambda x: F.mse_loss(x, x * 2), "gelu": F.gelu, "tanh": F.tanh, "sigmoid": F.sigmoid,
    # no parameters: its sinusoid table is a float64 buffer, not an operand that sets a dtype
    "positional_encoding": lambda x: nn.PositionalEncoding(4).to(x.backend)(x[None]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(INT_ONLY_OPS))
def test_a_float_valued_op_of_integers_alone_gives_float32(name, backend):
    x, x_float = _int_and_float(backend, "float32")
    mg.manual_seed(0)
    y = INT_ONLY_OPS[name](x)
    mg.manual_seed(0)
    expected = INT_ONLY_OPS[name](x_float)
    assert y.dtype == "float32"
    assert_close(y, expected.numpy(), rtol=1e-6, atol=1e-6)


LAYERS = {           # (factory, the integer inputs of its forward)
    "Linear": (lambda: nn.Linear(4, 3), lambda x3: (x3,)),
    "LayerNorm": (lambda: nn.LayerNorm(4), lambda x3: (x3,)),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 2)), lambda x3: (x3,)),
    "GRUCell": (lambda: nn.GRUCell(4, 3), lambda x3: (x3[0],)),
    "LSTMCell": (lambda: nn.LSTMCell(4, 3), lambda x3: (x3[0],)),
    "GRU": (lambda: nn.GRU(4, 3, num_layers=2, bidirectional=True), lambda x3: (x3,)),
    "LSTM": (lambda: nn.LSTM(4, 3), lambda x3: (x3,)),
    "AdditiveAttention": (lambda: nn.AdditiveAttention(4, 4, 5), lambda x3: (x3[:, :1], x3)),
    "LuongAttention": (lambda: nn.LuongAttention(4, 4, score="general"), lambda x3: (x3[:, :1], x3)),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(4, 2), lambda x3: (x3, x3, x3)),
    "TransformerEncoderLayer": (lambda: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0), lambda x3: (x3,)),
    "TransformerDecoderLayer": (lambda: nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0), lambda x3: (x3, x3)),
    "Transformer": (lambda: nn.Transformer(4, 2, 1, 1, 8, dropout=0.0), lambda x3: (x3, x3)),
}


def _float_outputs(result):
    parts = result if isinstance(result, (tuple, list)) else (result,)
    flat = []
    for part in parts:
        flat.extend(_float_outputs(part) if isinstance(part, (tuple, list)) else [part])
    return [t for t in flat if t is not None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_layer_given_integers_computes_in_its_parameters_dtype(name, dtype, backend):
    factory, inputs = LAYERS[name]
    mg.manual_seed(0)
    with mg.use_backend(backend):
        layer = factory().to(dtype)
    x3 = tensor(np.arange(24).reshape(2, 3, 4) % 5 - 2, backend)
    got = _float_outputs(layer(*inputs(x3)))
    want = _float_outputs(layer(*inputs(x3.astype(dtype))))
    for g, w in zip(got, want):
        assert g.dtype == dtype, f"{name}: an output in {g.dtype}"
        assert_close(g, w.numpy(), rtol=1e-6, atol=1e-6)


def test_nn_linear_of_integers_is_float32_as_the_issue_asked():
    assert nn.Linear(4, 8)(mg.Tensor([[1, 2, 3, 4]])).dtype == "float32"


# -- mg.Tensor of what is not numbers ---------------------------------------------------

@pytest.mark.parametrize("data, what", [
    (["a", "b"], r"dtype <U1 \(strings\)"),
    (np.array([b"x"]), r"dtype \|S1 \(bytes\)"),
    (np.array([1, "a"], dtype=object), r"dtype object \(Python objects\)"),
    ([1, None], r"dtype object \(Python objects\)"),
    (None, r"None"),
    (np.array([1 + 2j]), r"dtype complex128 \(complex numbers\)"),
    (np.array(["2026-11-21"], dtype="datetime64[D]"), r"dtype datetime64\[D\] \(dates and times\)"),
])
def test_a_tensor_of_what_is_not_numbers_is_a_type_error_naming_it(data, what):
    for make in (mg.Tensor, mg.tensor):
        with pytest.raises(TypeError, match=r"Tensor: expected numbers .*bool, integer or float.*got " + what):
            make(data)


def test_a_tensor_of_strings_with_a_numeric_dtype_converts_as_numpy_does():
    assert mg.Tensor(["1.5", "2"], dtype="float32").numpy().tolist() == [1.5, 2.0]


# -- gradcheck of a function that does not return Tensors ---------------------------------

@pytest.mark.parametrize("fn, what", [
    (lambda x: float(x.sum().item()), r"got float"),
    (lambda x: x.numpy() * 2, r"got numpy\.ndarray"),
    (lambda x: None, r"got None"),
    (lambda x: (x * 2, 3.0), r"output 1 is float"),
    (lambda x: [x * 2, x.numpy()], r"output 1 is numpy\.ndarray"),
    (lambda x: (), r"got an empty tuple"),
])
def test_gradcheck_of_a_function_returning_a_non_tensor_names_what_came(fn, what):
    x = mg.Tensor(randn(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"gradcheck: fn must return a Tensor or a tuple of Tensors; " + what):
        mg.gradcheck(fn, [x])
