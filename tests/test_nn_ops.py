"""The fused neural-net ops of minigrad/ops/nn_*.py, each against NumPy and its oracle.

softmax, log_softmax, cross_entropy, embedding, dropout and layer_norm: forward
values against NumPy computing the same thing; values and gradients (along one
random upstream gradient) equal to the ``*_composed`` reference built from
primitive ops; float64 gradient checks; the numerical edges (logits of +-1e4,
-inf masks, padding targets, p = 0 and 1, constant rows); errors and their
messages; float32 kept. Every test runs on each backend in BACKENDS.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, arrays, assert_close, check_grad, shapes, tensor

to_numpy = mg.backend.to_numpy


# -- NumPy references ---------------------------------------------------------

def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """PyTorch's definition for logits (N, C) and target (N,), one example at a time."""
    N, C = logits.shape
    eps = label_smoothing
    log_p = np_log_softmax(logits, axis=1)
    losses = np.zeros(N)
    for n in range(N):
        if target[n] == ignore_index:
            continue                                          # ignored: contributes 0
        losses[n] = (1 - eps) * -log_p[n, target[n]]
        if eps:
            losses[n] += eps / C * -log_p[n].sum()
    if reduction == "mean":                                   # over non-ignored targets
        return losses.sum() / np.sum(target != ignore_index)
    return losses.sum() if reduction == "sum" else losses


def np_layer_norm(x, k, weight=None, bias=None, eps=1e-5):
    """Over the last k axes: biased variance, eps inside the square root."""
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# -- helpers ---------------------------------------------------------------------

def upstream(shape, dtype=np.float64, seed=0):
    """A random upstream gradient (never all ones: that would hide softmax/layer-norm bugs)."""
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def values_and_grads(fn, inputs, gy=None):
    """fn(*inputs) as NumPy, and the gradients of the inputs that require grad after
    backward along ``gy`` (a random upstream gradient of the output's shape by default)."""
    y = fn(*inputs)
    gy = upstream(y.shape, y.dtype) if gy is None else gy
    y.backward(tensor(gy, y.backend))
    grads = [to_numpy(x.grad) for x in inputs if isinstance(x, mg.Tensor) and x.requires_grad]
    return y.numpy(), grads


def assert_fused_equals_composed(fused, composed, make_inputs, rtol=1e-9, atol=1e-12):
    """Same values, and same gradients along the same random upstream gradient."""
    y_fused, g_fused = values_and_grads(fused, make_inputs())
    y_composed, g_composed = values_and_grads(composed, make_inputs())
    np.testing.assert_allclose(y_fused, y_composed, rtol=rtol, atol=atol)
    assert len(g_fused) == len(g_composed) > 0
    for a, b in zip(g_fused, g_composed):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# -- softmax and log_softmax ----------------------------------------------------------

SOFTMAXES = [
    pytest.param(mg.softmax, mg.ops.softmax_composed, np_softmax, id="softmax"),
    pytest.param(mg.log_softmax, mg.ops.log_softmax_composed, np_log_softmax, id="log_softmax"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fused, composed, reference", SOFTMAXES)
@given(data=st.data())
def test_softmax_matches_numpy_and_composed_along_any_axis(backend, fused, composed, reference, data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, -5.0, 5.0))
    assert_close(fused(tensor(x, backend), axis=axis), reference(x, axis), rtol=1e-10, atol=1e-12)
    assert_fused_equals_composed(lambda t: fused(t, axis=axis), lambda t: composed(t, axis=axis),
                                 lambda: [tensor(x, backend, requires_grad=True)])
    check_grad(lambda t: fused(t, axis=axis), [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fused", [mg.softmax, mg.log_softmax])
@pytest.mark.parametrize("shape, axis", [((0, 3), 1), ((2, 0, 3), -1), ((0, 1), 1)])
def test_softmax_of_an_empty_tensor_is_empty(backend, fused, shape, axis):
    assert fused(tensor(np.zeros(shape), backend), axis=axis).shape == shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fused", [mg.softmax, mg.log_softmax])
def test_softmax_over_an_empty_axis_is_empty(backend, fused):
    # PyTorch returns an empty tensor here: there is nothing to normalize.
    assert fused(tensor(np.zeros((2, 0)), backend), axis=1).shape == (2, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_softmax_is_a_probability_distribution(backend, data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    y = mg.softmax(tensor(data.draw(arrays(shape, -1e4, 1e4)), backend), axis=axis).numpy()
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_log_softmax_is_log_of_softmax(backend, data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = tensor(data.draw(arrays(shape, -30.0, 30.0)), backend)   # softmax >= e^-60: no underflow
    assert_close(mg.log_softmax(x, axis=axis), mg.log(mg.softmax(x, axis=axis)).numpy(),
                 rtol=1e-10, atol=1e-12)


HUGE = st.sampled_from([-1e4, -1e4 + 1.0, -1.0, 0.0, 1e4 - 1.0, 1e4, 3e4])
MATRIX_SHAPES = hnp.array_shapes(min_dims=2, max_dims=2, max_side=4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fused, composed, reference", SOFTMAXES)
@given(x=hnp.arrays(np.float64, MATRIX_SHAPES, elements=HUGE))
def test_softmax_of_huge_logits_is_finite_with_finite_gradients(backend, fused, composed, reference, x):
    y, (gx,) = values_and_grads(fused, [tensor(x, backend, requires_grad=True)])
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    np.testing.assert_allclose(y, reference(x, -1), rtol=1e-10, atol=1e-12)
    assert_fused_equals_composed(fused, composed, lambda: [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@given(x=hnp.arrays(np.float64, MATRIX_SHAPES, elements=HUGE), data=st.data())
def test_cross_entropy_of_huge_logits_is_finite_with_finite_gradients(backend, label_smoothing, x, data):
    target = np.array(data.draw(st.lists(st.integers(0, x.shape[1] - 1),
                                         min_size=x.shape[0], max_size=x.shape[0])))
    t = tensor(target, backend)
    loss, (g_logits,) = values_and_grads(lambda z: mg.cross_entropy(z, t, label_smoothing=label_smoothing),
                                         [tensor(x, backend, requires_grad=True)])
    assert np.isfinite(loss) and np.all(np.isfinite(g_logits))
    np.testing.assert_allclose(loss, np_cross_entropy(x, target, label_smoothing=label_smoothing),
                               rtol=1e-10, atol=1e-12)
    assert_fused_equals_composed(
        lambda z: mg.cross_entropy(z, t, label_smoothing=label_smoothing),
        lambda z: mg.ops.cross_entropy_composed(z, t, label_smoothing=label_smoothing),
        lambda: [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_fully_masked_row_gives_zeros_and_zero_gradient_without_warning(backend, axis):
    rows = np.array([[-np.inf, -np.inf, -np.inf],       # fully masked
                     [0.5, -np.inf, 2.0],               # partially masked
                     [1.0, -1.0, 0.0]])
    x = rows if axis == -1 else rows.T                  # the rows lie along `axis`
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a RuntimeWarning (0/0, inf-inf) fails
        y, (gx,) = values_and_grads(lambda t: mg.softmax(t, axis=axis),
                                    [tensor(x, backend, requires_grad=True)])
    y, gx = (y, gx) if axis == -1 else (y.T, gx.T)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(gx))
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_array_equal(gx[0], 0.0)
    np.testing.assert_allclose(y[1:], np_softmax(rows[1:], 1), rtol=1e-12)
    assert y[1, 1] == 0.0 and gx[1, 1] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_masked_entries_get_zero_probability(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=4))
    x = data.draw(arrays(shape, -5.0, 5.0))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    mask[:, 0] = False                                  # at least one entry left in each row
    x[mask] = -np.inf
    y, (gx,) = values_and_grads(mg.softmax, [tensor(x, backend, requires_grad=True)])
    np.testing.assert_array_equal(y[mask], 0.0)
    np.testing.assert_array_equal(gx[mask], 0.0)
    np.testing.assert_allclose(y, np_softmax(x, -1), rtol=1e-10, atol=1e-12)
    log_y, (g_log,) = values_and_grads(mg.log_softmax, [tensor(x, backend, requires_grad=True)])
    np.testing.assert_array_equal(log_y[mask], -np.inf)
    np.testing.assert_allclose(log_y[~mask], np.log(y[~mask]), rtol=1e-10, atol=1e-12)
    assert np.all(np.isfinite(g_log))
    assert_fused_equals_composed(mg.log_softmax, mg.ops.log_softmax_composed,
                                 lambda: [tensor(x, backend, requires_grad=True)])


# -- cross_entropy -------------------------------------------------------------------

def draw_targets(data, N, C, ignore_index):
    """N class indices in [0, C), some of them ignore_index; the first always a real class."""
    classes = [c for c in range(C) if c != ignore_index]
    target = data.draw(st.lists(st.sampled_from(classes + [ignore_index]), min_size=N, max_size=N))
    target[0] = data.draw(st.sampled_from(classes))       # a mean over no targets is NaN
    return np.array(target)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("ignore_index", [-100, 0])
@given(data=st.data())
def test_cross_entropy_matches_pytorch_definition(backend, reduction, label_smoothing, ignore_index, data):
    N = data.draw(st.integers(1, 4))
    C = data.draw(st.integers(1 if ignore_index < 0 else 2, 4))
    logits, target = data.draw(arrays((N, C), -4.0, 4.0)), draw_targets(data, N, C, ignore_index)
    kw = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    t = tensor(target, backend)
    assert_close(mg.cross_entropy(tensor(logits, backend), t, **kw),
                 np_cross_entropy(logits, target, **kw), rtol=1e-10, atol=1e-12)
    assert_fused_equals_composed(lambda x: mg.cross_entropy(x, t, **kw),
                                 lambda x: mg.ops.cross_entropy_composed(x, t, **kw),
                                 lambda: [tensor(logits, backend, requires_grad=True)])
    check_grad(lambda x: mg.cross_entropy(x, t, **kw), [tensor(logits, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_ignored_targets_give_zero_loss_and_zero_gradient(backend, ignore_index, label_smoothing):
    logits = upstream((4, 3), seed=1)
    target = np.array([0, ignore_index, 1, ignore_index])
    loss, (g_logits,) = values_and_grads(
        lambda x: mg.cross_entropy(x, tensor(target, backend), ignore_index=ignore_index,
                                   label_smoothing=label_smoothing, reduction="none"),
        [tensor(logits, backend, requires_grad=True)])
    ignored = target == ignore_index
    np.testing.assert_array_equal(loss[ignored], 0.0)
    np.testing.assert_array_equal(g_logits[ignored], 0.0)
    assert np.all(loss[~ignored] > 0) and np.all(np.abs(g_logits[~ignored]) > 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 0])
@given(data=st.data())
def test_padding_never_changes_the_loss_or_the_real_gradients(backend, reduction, label_smoothing,
                                                              ignore_index, data):
    N, C = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4))
    pads = data.draw(st.integers(1, 3))
    logits = data.draw(arrays((N + pads, C), -4.0, 4.0))          # padding rows hold any logits
    target = draw_targets(data, N, C, ignore_index)
    padded_target = np.concatenate([target, np.full(pads, ignore_index)])
    kw = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    gy = upstream(())
    loss, (g,) = values_and_grads(lambda x: mg.cross_entropy(x, tensor(target, backend), **kw),
                                  [tensor(logits[:N], backend, requires_grad=True)], gy)
    padded_loss, (padded_g,) = values_and_grads(
        lambda x: mg.cross_entropy(x, tensor(padded_target, backend), **kw),
        [tensor(logits, backend, requires_grad=True)], gy)
    np.testing.assert_allclose(padded_loss, loss, rtol=1e-12)
    np.testing.assert_allclose(padded_g[:N], g, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(padded_g[N:], 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy_with_class_axis_1(backend, reduction, data):
    N, C, d1 = (data.draw(st.integers(low, 3)) for low in (1, 2, 1))
    logits = data.draw(arrays((N, C, d1), -4.0, 4.0))
    target = draw_targets(data, N * d1, C, -100).reshape(N, d1)
    flat_logits = np.moveaxis(logits, 1, -1).reshape(-1, C)       # (N d1, C)
    expected = np_cross_entropy(flat_logits, target.reshape(-1), reduction=reduction)
    t = tensor(target, backend)
    loss = mg.cross_entropy(tensor(logits, backend), t, reduction=reduction)
    assert loss.shape == ((N, d1) if reduction == "none" else ())
    assert_close(loss, np.reshape(expected, loss.shape), rtol=1e-10, atol=1e-12)

    def composed(x):
        flat = mg.ops.cross_entropy_composed(x.transpose(0, 2, 1).reshape(-1, C), t.reshape(-1),
                                             reduction=reduction)
        return flat.reshape(N, d1) if reduction == "none" else flat
    assert_fused_equals_composed(lambda x: mg.cross_entropy(x, t, reduction=reduction), composed,
                                 lambda: [tensor(logits, backend, requires_grad=True)])
    check_grad(lambda x: mg.cross_entropy(x, t, reduction=reduction),
               [tensor(logits, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_of_one_example_with_scalar_target(backend, reduction):
    logits, target = np.array([0.5, -1.0, 2.0, 0.0]), np.array(2)
    t = tensor(target, backend)
    loss = mg.cross_entropy(tensor(logits, backend), t, reduction=reduction, label_smoothing=0.1)
    assert loss.shape == ()
    expected = np_cross_entropy(logits[None], target[None], reduction=reduction, label_smoothing=0.1)
    assert_close(loss, np.reshape(expected, ()), rtol=1e-12)
    check_grad(lambda x: mg.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1),
               [tensor(logits, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_a_masked_logit_and_no_smoothing_is_finite(backend):
    # A -inf logit on a class that is not the target (a vocabulary mask): p = 0 there,
    # and without label smoothing nothing takes its log. PyTorch gives a finite loss.
    logits, target = np.array([[0.0, -np.inf, 1.0], [2.0, 0.0, -np.inf]]), np.array([0, 1])
    loss, (g_logits,) = values_and_grads(lambda x: mg.cross_entropy(x, tensor(target, backend)),
                                         [tensor(logits, backend, requires_grad=True)])
    np.testing.assert_allclose(loss, np_cross_entropy(logits, target), rtol=1e-12)
    assert np.all(np.isfinite(g_logits))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("logits_shape, target, error, match", [
    ((2, 3), np.array([0.0, 1.0]), TypeError, r"integer class indices.*float64"),
    ((2, 3), np.array([0, 3]), IndexError, r"target 3 is out of range.*\[0, 3\)"),
    ((2, 3), np.array([-2, 1]), IndexError, r"target -2 is out of range"),
    ((2, 3), np.array([0, 1, 2]), ValueError, r"\(2, 3\) need a target of shape \(2,\), got \(3,\)"),
    ((2, 3, 4), np.array([0, 1]), ValueError, r"\(2, 3, 4\) need a target of shape \(2, 4\), got \(2,\)"),
    ((3,), np.array([1]), ValueError, r"\(3,\) need a target of shape \(\), got \(1,\)"),
])
def test_cross_entropy_rejects_bad_targets(backend, logits_shape, target, error, match):
    with pytest.raises(error, match=match):
        mg.cross_entropy(tensor(np.zeros(logits_shape), backend), tensor(target, backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kw, match", [
    (dict(reduction="avg"), r"reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (dict(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\], got 1.5"),
])
def test_cross_entropy_rejects_bad_arguments(backend, kw, match):
    with pytest.raises(ValueError, match=match):
        mg.cross_entropy(tensor(np.zeros((2, 3)), backend), tensor(np.array([0, 1]), backend), **kw)


# -- embedding -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_embedding_matches_numpy_indexing(backend, data):
    V, D = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    weight = data.draw(arrays((V, D)))
    indices = data.draw(hnp.arrays(np.int64, shapes(min_dims=0, max_dims=2, min_side=0),
                                   elements=st.integers(0, V - 1)))
    idx = tensor(indices, backend)
    assert_close(mg.embedding(idx, tensor(weight, backend)), weight[indices], rtol=0, atol=0)
    assert_fused_equals_composed(lambda w: mg.embedding(idx, w),
                                 lambda w: mg.ops.embedding_composed(idx, w),
                                 lambda: [tensor(weight, backend, requires_grad=True)])
    check_grad(lambda w: mg.embedding(idx, w), [tensor(weight, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_gradient_adds_up_over_duplicated_indices(backend):
    indices = np.array([[0, 2, 0], [2, 2, 1]])
    gy = upstream((2, 3, 2))
    _, (gW,) = values_and_grads(lambda w: mg.embedding(tensor(indices, backend), w),
                                [tensor(upstream((4, 2), seed=1), backend, requires_grad=True)], gy)
    expected = np.stack([gy[0, 0] + gy[0, 2],                 # row 0 read twice
                         gy[1, 2],                            # row 1 once
                         gy[0, 1] + gy[1, 0] + gy[1, 1],      # row 2 three times
                         np.zeros(2)])                        # row 3 never
    np.testing.assert_allclose(gW, expected, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding_idx", [1, -1])
def test_embedding_padding_row_gets_no_gradient(backend, padding_idx):
    weight, indices = upstream((4, 3), seed=1), np.array([[1, 3, 0], [3, 1, 2]])
    gy = upstream((2, 3, 3))
    y, (gW,) = values_and_grads(
        lambda w: mg.embedding(tensor(indices, backend), w, padding_idx=padding_idx),
        [tensor(weight, backend, requires_grad=True)], gy)
    np.testing.assert_array_equal(y, weight[indices])        # the padding row is still read
    expected = np.zeros_like(weight)
    np.add.at(expected, indices.reshape(-1), gy.reshape(-1, 3))
    expected[padding_idx] = 0.0
    np.testing.assert_allclose(gW, expected, rtol=1e-15)
    assert np.all(gW[[i for i in range(4) if i != padding_idx % 4]] != 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("indices, kw, error, match", [
    (np.array([0, 4]), {}, IndexError, r"in \[0, 4\) for 4 embeddings, got values from 0 to 4"),
    (np.array([[-1, 2]]), {}, IndexError, r"in \[0, 4\) for 4 embeddings, got values from -1 to 2"),
    (np.array([0.0, 1.0]), {}, TypeError, r"integer indices, got dtype float64"),
    (np.array([0, 1]), dict(padding_idx=4), ValueError, r"padding_idx must be in \[-4, 4\), got 4"),
])
def test_embedding_rejects_bad_indices(backend, indices, kw, error, match):
    with pytest.raises(error, match=match):
        mg.embedding(tensor(indices, backend), tensor(np.zeros((4, 2)), backend), **kw)


# -- dropout ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p, training", [(0.5, False), (1.0, False), (0.0, True)])
def test_dropout_is_the_identity_when_not_training_or_p_is_zero(backend, p, training):
    x, gy = upstream((3, 4), seed=1), upstream((3, 4))
    y, (gx,) = values_and_grads(lambda t: mg.dropout(t, p, training=training),
                                [tensor(x, backend, requires_grad=True)], gy)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(gx, gy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_with_p_one_drops_everything(backend):
    y, (gx,) = values_and_grads(lambda t: mg.dropout(t, 1.0),
                                [tensor(upstream((3, 4), seed=1), backend, requires_grad=True)])
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(gx, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_equals_composed_for_the_same_mask(backend, p):
    x = upstream((8, 16), seed=1)
    mg.manual_seed(7)
    mask = mg.ops.dropout_mask(tensor(x, backend), p)
    mask_np = to_numpy(mask)
    assert 0 < mask_np.sum() < mask_np.size                   # some kept, some dropped
    mg.manual_seed(7)                                         # dropout draws the same mask
    y = mg.dropout(tensor(x, backend), p)
    np.testing.assert_allclose(y.numpy(), np.where(mask_np, x / (1 - p), 0.0), rtol=1e-15)

    def fused(t):
        mg.manual_seed(7)
        return mg.dropout(t, p)
    assert_fused_equals_composed(fused, lambda t: mg.ops.dropout_composed(t, mask, p),
                                 lambda: [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_dropout_gradcheck_with_a_fixed_seed(backend, data):
    x = data.draw(arrays(data.draw(shapes(min_side=0))))
    p = data.draw(st.sampled_from([0.1, 0.5]))

    def fn(t):
        mg.manual_seed(3)                                     # the same mask at every call
        return mg.dropout(t, p)
    check_grad(fn, [tensor(x, backend, requires_grad=True)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_about_1_minus_p_and_preserves_the_mean(backend, p):
    # n Bernoulli(1 - p) draws: the kept fraction has standard deviation
    # sqrt(p (1 - p) / n) <= 0.0016 and the mean of y = x m / (1 - p) has
    # sqrt(mean(x^2) p / (1 - p) / n). Five of them: a correct dropout fails for
    # about one seed in a million, a keep probability off by 0.01 (or p and 1 - p
    # swapped, or a missing 1 / (1 - p)) fails always.
    n = 100_000
    x = np.random.default_rng(1).uniform(1.0, 2.0, n)      # no zeros: y != 0 means kept
    mg.manual_seed(11)
    y = mg.dropout(tensor(x, backend), p).numpy()
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) <= 5 * np.sqrt(p * (1 - p) / n)
    assert abs(y.mean() - x.mean()) <= 5 * np.sqrt(np.mean(x ** 2) * p / (1 - p) / n)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_manual_seed_makes_dropout_masks_reproducible(backend):
    x = tensor(np.ones(1000), backend)
    masks = []
    for seed in (5, 5, 6):
        mg.manual_seed(seed)
        masks.append(mg.dropout(x, 0.5).numpy() != 0)
    np.testing.assert_array_equal(masks[0], masks[1])
    assert np.any(masks[0] != masks[2])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_a_p_outside_0_1(backend, p):
    with pytest.raises(ValueError, match=rf"p must be a probability in \[0, 1\], got {p}"):
        mg.dropout(tensor(np.ones(3), backend), p)


# -- layer_norm ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("has_weight", [False, True])
@pytest.mark.parametrize("has_bias", [False, True])
@given(data=st.data())
def test_layer_norm_matches_numpy_and_composed(backend, has_weight, has_bias, data):
    k = data.draw(st.sampled_from([1, 2]))                            # normalized trailing dims
    normalized_shape = data.draw(shapes(min_dims=k, max_dims=k))
    batch_shape = data.draw(shapes(min_dims=0, max_dims=3 - k, min_side=0, max_side=3))
    x = data.draw(arrays(batch_shape + normalized_shape))
    weight = data.draw(arrays(normalized_shape)) if has_weight else None
    bias = data.draw(arrays(normalized_shape)) if has_bias else None
    params = [p for p in (weight, bias) if p is not None]

    def call(op, xt, *ps):
        ps = list(ps)
        w = ps.pop(0) if has_weight else None
        b = ps.pop(0) if has_bias else None
        return op(xt, normalized_shape, weight=w, bias=b)

    def make_inputs():
        return [tensor(a, backend, requires_grad=True) for a in [x] + params]

    expected = np_layer_norm(x, k, weight, bias)
    assert_close(call(mg.layer_norm, *[tensor(a, backend) for a in [x] + params]), expected,
                 rtol=1e-9, atol=1e-12)
    assert_fused_equals_composed(lambda *ts: call(mg.layer_norm, *ts),
                                 lambda *ts: call(mg.ops.layer_norm_composed, *ts), make_inputs,
                                 rtol=1e-7, atol=1e-10)
    check_grad(lambda *ts: call(mg.layer_norm, *ts), make_inputs())


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_uses_biased_variance_with_eps_inside_the_root(backend):
    # A row with a variance near eps tells the conventions apart by far more than rounding.
    x, eps = np.array([[0.0, 0.002, 0.007]]), 1e-5
    xc = x - x.mean()
    expected = xc / np.sqrt(xc.var() + eps)                 # biased variance, eps inside
    assert not np.allclose(expected, xc / (xc.std() + eps), rtol=1e-3)              # eps outside
    assert not np.allclose(expected, xc / np.sqrt(xc.var(ddof=1) + eps), rtol=1e-3)  # unbiased
    assert_close(mg.layer_norm(tensor(x, backend), 3, eps=eps), expected, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, normalized_shape, param_shape, match", [
    ((2, 3), (4,), None, r"trailing shape \(4,\), got \(2, 3\)"),
    ((3,), (2, 3), None, r"trailing shape \(2, 3\), got \(3,\)"),
    ((2, 3), (3, 2), None, r"trailing shape \(3, 2\), got \(2, 3\)"),
    ((2, 3), (3,), (4,), r"weight of shape \(3,\), got \(4,\)"),
    ((2, 3, 4), (3, 4), (4,), r"weight of shape \(3, 4\), got \(4,\)"),
])
def test_layer_norm_rejects_wrong_shapes(backend, x_shape, normalized_shape, param_shape, match):
    weight = None if param_shape is None else tensor(np.ones(param_shape), backend)
    with pytest.raises(ValueError, match=match):
        mg.layer_norm(tensor(np.zeros(x_shape), backend), normalized_shape, weight=weight)


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_rejects_a_bias_of_the_wrong_shape(backend):
    with pytest.raises(ValueError, match=r"bias of shape \(3,\), got \(1, 3\)"):
        mg.layer_norm(tensor(np.zeros((2, 3)), backend), (3,), bias=tensor(np.zeros((1, 3)), backend))


# -- dtypes ---------------------------------------------------------------------------------

def _cross_entropy(x):
    return mg.cross_entropy(x, tensor(np.array([0, 2, 1]), x.backend), label_smoothing=0.1)


def _embedding(w):
    return mg.embedding(tensor(np.array([[0, 2], [2, 1]]), w.backend), w)


def _dropout(x):
    mg.manual_seed(0)
    return mg.dropout(x, 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn, n_inputs", [
    (lambda x: mg.softmax(x, axis=0), 1),
    (lambda x: mg.log_softmax(x, axis=-1), 1),
    (_cross_entropy, 1),
    (_embedding, 1),
    (_dropout, 1),
    (lambda x, w, b: mg.layer_norm(x, 3, weight=w, bias=b), 3),
], ids=["softmax", "log_softmax", "cross_entropy", "embedding", "dropout", "layer_norm"])
def test_fused_ops_keep_the_float_dtype(backend, dtype, fn, n_inputs):
    input_shapes = [(3, 3)] + [(3,)] * (n_inputs - 1)             # x, then weight and bias
    inputs = [tensor(upstream(shape, dtype, seed=i), backend, requires_grad=True)
              for i, shape in enumerate(input_shapes)]
    y = fn(*inputs)
    assert y.dtype == dtype
    y.backward(tensor(upstream(y.shape, dtype), backend))
    assert all(x.grad.dtype == dtype for x in inputs)


def test_python_int_targets_and_indices_stay_integers():
    logits = np.array([0.5, -1.0, 2.0])
    loss = mg.cross_entropy(mg.Tensor(logits), 2)
    np.testing.assert_allclose(loss.item(), -np_log_softmax(logits, 0)[2], rtol=1e-6)
    weight = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(mg.embedding(1, mg.Tensor(weight)).numpy(), weight[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", [mg.softmax, mg.log_softmax])
def test_softmax_backward_through_an_empty_axis_gives_an_empty_gradient(backend, op):
    x = tensor(np.zeros((2, 0)), backend, requires_grad=True)
    op(x, axis=1).backward(tensor(np.zeros((2, 0)), backend).data)
    assert x.grad.shape == (2, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_of_an_empty_batch_with_sum_is_zero(backend):
    logits = tensor(np.zeros((0, 4)), backend, requires_grad=True)
    loss = mg.cross_entropy(logits, tensor(np.zeros((0,), dtype=np.int64), backend), reduction="sum")
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 4)
