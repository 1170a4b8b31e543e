"""Shape ops (minigrad/ops/shape.py) against NumPy, with gradient checks on every backend.

Covers reshape (with -1, and the error naming both shapes), transpose / .T / permute,
swapaxes, getitem (basic slices, None / Ellipsis, integer arrays with repeated indices,
boolean masks, integer Tensors, index arrays on the wrong backend), concatenate,
stack, split (a gradient reaching only some pieces), broadcast_to, expand_dims,
squeeze, pad, Tensor.to(backend) and the error for ops mixing two backends.
Shapes come from hypothesis, with size-1 dimensions and size-0 edges where the op
allows them; float32 and float64 are kept by forward and backward.
"""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from helpers import BACKENDS, arrays, assert_close, check_grad, shapes, tensor


def _names_both(a, b):
    """A regex matching a message that names both ``a`` and ``b`` (as str), in that order."""
    return re.escape(str(a)) + ".*" + re.escape(str(b))


def _draw_tensor(data, shape, backend):
    """A float64 NumPy array of ``shape`` and a Tensor copy of it that requires grad."""
    x_np = data.draw(arrays(shape))
    return x_np, tensor(x_np, backend, requires_grad=True)


# -- reshape -------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_reshape_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    target = list(data.draw(st.permutations(shape)))
    if len(target) >= 2 and data.draw(st.booleans()):
        target = [target[0] * target[1]] + target[2:]           # merge two axes
    if target and x_np.size > 0 and data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1  # let reshape infer one
    target = tuple(target)
    assert_close(mg.reshape(x, target), x_np.reshape(target))
    assert_close(x.reshape(*target), x_np.reshape(target))
    check_grad(lambda x: mg.reshape(x, target), [x])


@pytest.mark.parametrize("src, target", [
    ((2, 3), (4,)),
    ((2, 3), (-1, 4)),
    ((2, 3), (-1, -1)),
    ((0, 3), (-1, 0)),
    ((6,), (2, 2)),
])
def test_reshape_to_an_incompatible_shape_names_both_shapes(src, target):
    x = mg.Tensor(np.zeros(src))
    with pytest.raises(ValueError, match=_names_both(src, target)):
        mg.reshape(x, target)


# -- transpose, .T, permute, swapaxes ------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_transpose_and_permute_match_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    perm = data.draw(st.permutations(range(len(shape))))
    signed = tuple(a - len(shape) if data.draw(st.booleans()) else a for a in perm)
    expected = np.transpose(x_np, perm)
    assert_close(mg.transpose(x, signed), expected)
    assert_close(x.permute(perm), expected)
    assert_close(x.transpose(perm), expected)
    if tuple(perm) != (0, 1):        # of a 2-D tensor, transpose(0, 1) is refused as ambiguous
        assert_close(x.transpose(*perm), expected)
    check_grad(lambda x: mg.transpose(x, signed), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_T_reverses_the_axes_and_gradcheck(backend, data):
    x_np, x = _draw_tensor(data, data.draw(shapes(min_dims=0, max_side=4, min_side=0)), backend)
    assert_close(x.T, x_np.T)
    assert_close(x.transpose(), x_np.T)
    check_grad(lambda x: x.T, [x])


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1), (0, 1, 3), (0, 1, -4)])
def test_transpose_with_axes_that_are_not_a_permutation_raises(axes):
    with pytest.raises(ValueError, match="not a permutation"):
        mg.transpose(mg.Tensor(np.zeros((2, 3, 4))), axes)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_swapaxes_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    axis1, axis2 = (data.draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(2))
    assert_close(mg.swapaxes(x, axis1, axis2), np.swapaxes(x_np, axis1, axis2))
    assert_close(x.swapaxes(axis1, axis2), np.swapaxes(x_np, axis1, axis2))
    check_grad(lambda x: mg.swapaxes(x, axis1, axis2), [x])


# -- getitem -------------------------------------------------------------------------

S = slice
BASIC_AND_LIST_INDICES = [
    ((5,), S(1, 4)),
    ((5,), S(None, None, 2)),
    ((5,), S(None, None, -1)),
    ((5,), S(-4, -1, 2)),
    ((5,), -2),
    ((3, 4), (S(None), S(None, None, -2))),
    ((3, 4), (1, -2)),
    ((3, 4), (None, Ellipsis, 1)),
    ((2, 3, 4), (Ellipsis, None, S(1, 3))),
    ((2, 3, 4), (0, Ellipsis)),
    ((3, 4), S(5, 9)),                      # past the end: empty result
    ((3, 4), (S(1, 1),)),                   # empty slice
    ((0, 3), S(None)),                      # empty input
    ((5,), [0, 0, 2]),                      # repeated indices
    ((3, 4), [2, -1, 2]),
    ((3, 4), (S(None), [3, 3, 0])),
    ((3, 4), ([0, 2, 2], [1, 1, 1])),
    ((2, 3, 4), (Ellipsis, [1, 1])),
    ((2, 3, 4), (1, S(None), [0, 0])),
]


def _check_getitem(x, x_np, index, index_np):
    """x[index] equals NumPy's x_np[index_np], and its gradient passes gradcheck."""
    assert_close(x[index], x_np[index_np])
    check_grad(lambda x: x[index], [x])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, index", BASIC_AND_LIST_INDICES)
def test_getitem_matches_numpy_and_gradcheck(backend, shape, index):
    x_np = np.random.default_rng(0).standard_normal(shape)
    x = tensor(x_np, backend, requires_grad=True)
    _check_getitem(x, x_np, index, index)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_getitem_with_basic_indices_from_hypothesis(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    _check_getitem(x, x_np, index, index)


@pytest.mark.parametrize("backend", BACKENDS)
def test_getitem_repeated_indices_accumulate_the_gradient(backend):
    x = tensor(np.arange(5.0), backend, requires_grad=True)
    x[[0, 0, 2]].backward(tensor(np.array([1.0, 2.0, 4.0]), backend))
    assert_close(x.grad, np.array([3.0, 0.0, 4.0, 0.0, 0.0]))     # 1 + 2 at index 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_getitem_repeated_rows_accumulate_the_gradient(backend):
    x = tensor(np.zeros((3, 2)), backend, requires_grad=True)
    gy = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    x[[0, 0, 2]].backward(tensor(gy, backend))
    assert_close(x.grad, np.array([[4.0, 6.0], [0.0, 0.0], [5.0, 6.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_getitem_with_integer_tensor_indices(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    index = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    index_t = tuple(tensor(i, backend) for i in index)         # repeats and negatives included
    _check_getitem(x, x_np, index_t, index)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_getitem_with_a_boolean_mask(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    x_np, x = _draw_tensor(data, shape, backend)
    mask_ndim = data.draw(st.integers(1, len(shape)))                 # full or leading axes
    mask = data.draw(hnp.arrays(np.bool_, shape[:mask_ndim]))
    mask_t = tensor(mask, backend)
    _check_getitem(x, x_np, mask_t, mask)


@pytest.mark.parametrize("backend", BACKENDS)
def test_getitem_with_a_numpy_integer_scalar_acts_as_an_int(backend):
    x_np = np.arange(12.0).reshape(3, 4)
    x = tensor(x_np, backend, requires_grad=True)
    assert_close(x[np.int64(1)], x_np[1])
    check_grad(lambda x: x[np.int64(1), 2], [x])


@pytest.mark.parametrize("backend", BACKENDS)
def test_getitem_with_an_empty_list_gives_an_empty_tensor(backend):
    x = tensor(np.arange(5.0), backend, requires_grad=True)
    assert x[[]].shape == (0,)
    check_grad(lambda x: x[[]], [x])


@pytest.mark.parametrize("index_backend, x_backend", [("numpy", "strict"), ("strict", "numpy")])
@pytest.mark.parametrize("kind", ["int", "bool"])
def test_getitem_index_array_on_another_backend_raises(index_backend, x_backend, kind):
    x = tensor(np.arange(4.0), x_backend)
    index = np.array([0, 2, 2]) if kind == "int" else np.array([True, False, True, True])
    with pytest.raises(mg.BackendError, match=f"'{index_backend}'.*'{x_backend}'"):
        x[tensor(index, index_backend)]
    if index_backend == "numpy":                        # a raw NumPy array is refused too
        with pytest.raises(mg.BackendError, match=f"'{index_backend}'.*'{x_backend}'"):
            x[index]


def test_getitem_with_a_float_index_array_raises():
    x = mg.Tensor(np.arange(4.0))
    with pytest.raises(IndexError, match="integer or boolean.*float64"):
        x[mg.Tensor(np.array([0.0, 1.0]))]


# -- concatenate, stack, split --------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_concatenate_matches_numpy_and_gradcheck(backend, data):
    base = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))     # 0: an empty part
    parts_np = [data.draw(arrays(base[:axis % len(base)] + (n,) + base[axis % len(base) + 1:]))
                for n in sizes]
    parts = [tensor(p, backend, requires_grad=True) for p in parts_np]
    assert_close(mg.concatenate(parts, axis=axis), np.concatenate(parts_np, axis=axis))
    check_grad(lambda *ps: mg.concatenate(ps, axis=axis), parts)


def test_concatenate_shapes_that_differ_outside_the_axis_raises():
    a, b = mg.Tensor(np.zeros((2, 3))), mg.Tensor(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=_names_both((2, 3), (2, 4))):
        mg.concatenate([a, b], axis=0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_stack_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts_np = [data.draw(arrays(shape)) for _ in range(data.draw(st.integers(1, 3)))]
    parts = [tensor(p, backend, requires_grad=True) for p in parts_np]
    assert_close(mg.stack(parts, axis=axis), np.stack(parts_np, axis=axis))
    check_grad(lambda *ps: mg.stack(ps, axis=axis), parts)


def test_stack_of_different_shapes_raises():
    with pytest.raises(ValueError, match="one shape"):
        mg.stack([mg.Tensor(np.zeros((2, 3))), mg.Tensor(np.zeros((3, 2)))])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_split_into_sections_matches_numpy_and_gradcheck(backend, data):
    shape = list(data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sections = data.draw(st.integers(1, 3))
    shape[axis] = sections * data.draw(st.integers(0, 2))
    x_np, x = _draw_tensor(data, tuple(shape), backend)
    pieces = mg.split(x, sections, axis=axis)
    expected = np.split(x_np, sections, axis=axis)
    assert len(pieces) == len(expected)
    for piece, piece_np in zip(pieces, expected):
        assert_close(piece, piece_np)
    check_grad(lambda x: mg.split(x, sections, axis=axis), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_split_at_indices_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    indices = sorted(data.draw(st.lists(st.integers(0, shape[axis] + 1), max_size=3)))
    x_np, x = _draw_tensor(data, shape, backend)
    pieces = mg.split(x, indices, axis=axis)
    expected = np.split(x_np, indices, axis=axis)
    assert len(pieces) == len(expected)
    for piece, piece_np in zip(pieces, expected):
        assert_close(piece, piece_np)
    check_grad(lambda x: mg.split(x, indices, axis=axis), [x])
    # a gradient that reaches one piece only: the others count as zero
    k = data.draw(st.integers(0, len(expected) - 1))
    check_grad(lambda x: mg.split(x, indices, axis=axis)[k], [x])


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_gradient_reaching_one_piece_is_zero_elsewhere(backend):
    x = tensor(np.arange(6.0), backend, requires_grad=True)
    a, b, c = mg.split(x, 3)                       # a and c stay alive, unused
    b.backward(tensor(np.array([5.0, -7.0]), backend))
    assert_close(x.grad, np.array([0.0, 0.0, 5.0, -7.0, 0.0, 0.0]))


@pytest.mark.parametrize("sections", [0, 4, -1])
def test_split_into_unequal_sections_raises(sections):
    with pytest.raises(ValueError, match=f"size 6 does not split into {sections} equal sections"):
        mg.split(mg.Tensor(np.zeros((6, 2))), sections)


# -- broadcast_to, expand_dims, squeeze -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_broadcast_to_matches_numpy_and_gradcheck(backend, data):
    target = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    ndim = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if data.draw(st.booleans()) else n for n in target[len(target) - ndim:])
    x_np, x = _draw_tensor(data, shape, backend)
    assert_close(mg.broadcast_to(x, target), np.broadcast_to(x_np, target))
    check_grad(lambda x: mg.broadcast_to(x, target), [x])


@pytest.mark.parametrize("shape, target", [((3,), (4,)), ((2, 3), (3,)), ((2, 1), (2, 3, 4))])
def test_broadcast_to_an_incompatible_shape_names_both_shapes(shape, target):
    with pytest.raises(ValueError, match=_names_both(shape, target)):
        mg.broadcast_to(mg.Tensor(np.zeros(shape)), target)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_expand_dims_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x_np, x = _draw_tensor(data, shape, backend)
    assert_close(mg.expand_dims(x, axis), np.expand_dims(x_np, axis))
    check_grad(lambda x: mg.expand_dims(x, axis), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_squeeze_all_size_1_axes_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=0, max_dims=3, min_side=0, max_side=2))
    x_np, x = _draw_tensor(data, shape, backend)
    assert_close(mg.squeeze(x), np.squeeze(x_np))
    assert_close(x.squeeze(), np.squeeze(x_np))
    check_grad(lambda x: mg.squeeze(x), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_squeeze_given_axes_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=2))
    x_np, x = _draw_tensor(data, shape, backend)
    ones = [i for i, n in enumerate(shape) if n == 1]
    chosen = data.draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    axis = tuple(a - len(shape) if data.draw(st.booleans()) else a for a in chosen)
    if len(axis) == 1 and data.draw(st.booleans()):
        axis = axis[0]                                        # an int, not a tuple
    assert_close(mg.squeeze(x, axis), np.squeeze(x_np, axis))
    assert_close(x.squeeze(axis), np.squeeze(x_np, axis))
    check_grad(lambda x: mg.squeeze(x, axis), [x])


@pytest.mark.parametrize("axis, message", [
    (1, r"axis 1 of shape \(2, 3, 1\) has size 3, not 1"),
    (-3, r"axis 0 of shape \(2, 3, 1\) has size 2, not 1"),
    ((2, 0), r"axis 0 of shape \(2, 3, 1\) has size 2, not 1"),
    (3, "out of range"),
])
def test_squeeze_an_axis_that_is_not_1_raises(axis, message):
    with pytest.raises(ValueError, match=message):
        mg.squeeze(mg.Tensor(np.zeros((2, 3, 1))), axis)


# -- pad ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, pad_width", [
    ((3,), 2),                          # an int: every side of every axis
    ((2, 3), 1),
    ((2, 3), (1, 2)),                   # one (before, after) pair for every axis
    ((2, 3), ((2, 1),)),
    ((2, 3), ((1, 0), (0, 2))),         # one pair per axis
    ((2, 0, 1), ((0, 1), (2, 0), (1, 1))),
])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_pad_forms_match_numpy_and_gradcheck(backend, shape, pad_width, value):
    x_np = np.random.default_rng(1).standard_normal(shape)
    x = tensor(x_np, backend, requires_grad=True)
    assert_close(mg.pad(x, pad_width, constant_values=value),
                 np.pad(x_np, pad_width, mode="constant", constant_values=value))
    check_grad(lambda x: mg.pad(x, pad_width, constant_values=value), [x])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_pad_per_axis_matches_numpy_and_gradcheck(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    pairs = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    value = data.draw(st.sampled_from([0.0, 2.5]))
    x_np, x = _draw_tensor(data, shape, backend)
    assert_close(mg.pad(x, pairs, constant_values=value),
                 np.pad(x_np, pairs, mode="constant", constant_values=value))
    check_grad(lambda x: mg.pad(x, pairs, constant_values=value), [x])


@pytest.mark.parametrize("pad_width", [-1, ((1, 1), (1, 1), (1, 1)), ((1, -2), (0, 0))])
def test_pad_with_a_bad_pad_width_raises(pad_width):
    with pytest.raises(ValueError, match="non-negative \\(before, after\\) pairs"):
        mg.pad(mg.Tensor(np.zeros((2, 3))), pad_width)


# -- dtypes -----------------------------------------------------------------------------

SHAPE_OPS = {
    "reshape": lambda x: x.reshape(3, -1),
    "transpose": lambda x: x.T,
    "swapaxes": lambda x: mg.swapaxes(x, 0, 1),
    "getitem_slice": lambda x: x[:, ::2],
    "getitem_repeats": lambda x: x[[1, 1, 0]],
    "concatenate": lambda x: mg.concatenate([x, x[:, :1]], axis=1),
    "stack": lambda x: mg.stack([x, x], axis=1),
    "split": lambda x: mg.split(x, [1], axis=1)[1],
    "broadcast_to": lambda x: mg.broadcast_to(x, (4, 2, 3)),
    "expand_dims": lambda x: mg.expand_dims(x, 0),
    "squeeze": lambda x: mg.squeeze(x[:1]),
    "pad": lambda x: mg.pad(x, 1, constant_values=2.0),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", SHAPE_OPS.values(), ids=SHAPE_OPS.keys())
def test_shape_ops_keep_the_dtype_forward_and_backward(backend, dtype, op):
    x = tensor(np.arange(6, dtype=dtype).reshape(2, 3), backend, requires_grad=True)
    y = op(x)
    assert y.dtype == dtype
    y.backward(tensor(np.random.default_rng(2).standard_normal(y.shape).astype(dtype), backend))
    assert x.grad.dtype == dtype and x.grad.shape == (2, 3)


# -- moving between backends -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_numpy_copies_values_and_sends_the_gradient_back(backend, dtype):
    x_np = np.array([[1.0, -2.0, 3.5]], dtype=dtype)
    x = tensor(x_np, backend, requires_grad=True)
    y = x.to("numpy")
    assert y.backend == "numpy" and isinstance(y.data, np.ndarray) and y.dtype == dtype
    assert_close(y, x_np)
    gy = np.array([[0.5, 4.0, -1.0]], dtype=dtype)
    y.backward(gy)
    assert x.grad.dtype == dtype
    assert_close(x.grad, gy)                   # x.grad lives on x's backend
    assert mg.Tensor(x.grad).backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_to_numpy_round_trip_gradcheck(backend, data):
    x_np, x = _draw_tensor(data, data.draw(shapes(min_dims=0, max_side=3, min_side=0)), backend)
    y = x.to("numpy").to(backend)
    assert y.backend == backend
    assert_close(y, x_np)
    check_grad(lambda x: x.to("numpy").to(backend) * 3.0, [x])


MIXING_OPS = {
    "concatenate": lambda a, b: mg.concatenate([a, b]),
    "stack": lambda a, b: mg.stack([a, b]),
    "add": lambda a, b: a + b,
    "matmul": lambda a, b: a @ b,
}


@pytest.mark.parametrize("first, second", [("numpy", "strict"), ("strict", "numpy")])
@pytest.mark.parametrize("op", MIXING_OPS.values(), ids=MIXING_OPS.keys())
def test_an_op_mixing_backends_raises_naming_both(first, second, op):
    a, b = tensor(np.ones((2, 2)), first), tensor(np.ones((2, 2)), second)
    with pytest.raises(mg.BackendError, match=r"(?=.*\bnumpy\b)(?=.*\bstrict\b)"):
        op(a, b)


def test_split_with_decreasing_indices_is_refused():
    with pytest.raises(ValueError, match=r"increasing split indices, got \[3, 1\]"):
        mg.split(mg.Tensor(np.arange(5.0)), [3, 1])


def test_expand_dims_takes_a_tuple_of_axes_as_numpy():
    x = np.arange(6.0).reshape(2, 3)
    assert mg.expand_dims(mg.Tensor(x), (0, 3)).shape == np.expand_dims(x, (0, 3)).shape


def test_a_boolean_mask_mixed_with_an_integer_array_is_refused():
    x = mg.Tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(IndexError, match="boolean mask must be the only array"):
        x[np.array([True, False]), np.array([0])]


def test_numpy_integer_axes_and_sections_are_accepted():
    x = mg.Tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(axis=np.int64(1)).shape == (2,)
    assert [p.shape for p in mg.split(x, np.int64(3), axis=np.int64(1))] == [(2, 1)] * 3


def test_an_axis_of_a_0d_tensor_is_out_of_range():
    with pytest.raises(ValueError, match="axis 0 is out of range for a tensor of 0 dimensions"):
        mg.Tensor(1.0).sum(axis=0)
