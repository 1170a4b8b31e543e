"""The autograd engine: the recorded graph, backward's order and accumulation,
freed buffers, grad mode, detach, requires_grad propagation and dtype rules."""
import weakref

import numpy as np
import pytest

import minigrad as mg
from helpers import BACKENDS, tensor


# -- the walk ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chain_of_10000_ops_backpropagates_without_recursion_error(backend):
    x = tensor(np.array([0.5]), backend, requires_grad=True)
    y = x
    for _ in range(10_000):                     # a long RNN unroll in miniature
        y = y * 1.0001
    y.backward(tensor(np.array([1.0]), backend).data)
    np.testing.assert_allclose(mg.backend.to_numpy(x.grad), [1.0001 ** 10_000], rtol=1e-9)


def test_a_deep_tanh_chain_matches_the_product_of_local_derivatives():
    x = mg.Tensor(np.array([0.3]), requires_grad=True)
    y, expected, value = x, 1.0, 0.3
    for _ in range(3_000):
        value_next = np.tanh(value)
        expected *= 1 - value_next ** 2
        value = value_next
        y = mg.tanh(y)
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [expected], rtol=1e-10)


def test_a_tensor_used_twice_accumulates_both_gradients():
    x = mg.Tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x                                 # dy/dx = 2x + 1
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [7.0])


def test_diamond_graph_visits_each_node_after_all_its_users():
    x = mg.Tensor(np.array([2.0]), requires_grad=True)
    a = mg.exp(x)                                 # a is used by both b and c
    b, c = a * 3.0, a * a
    y = b * c                                     # y = 3 e^{3x}, dy/dx = 9 e^{3x}
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [9 * np.exp(6.0)])


def test_broadcasting_in_forward_is_summed_in_backward():
    a = mg.Tensor(np.ones((3, 1)), requires_grad=True)
    b = mg.Tensor(np.ones((4,)), requires_grad=True)
    gy = np.arange(12.0).reshape(3, 4)
    (a * b).backward(gy)
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad, gy.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(b.grad, gy.sum(axis=0))


def test_backward_twice_with_retain_graph_accumulates_into_grad():
    x = mg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * np.array([1.0, 2.0])))


def test_gradients_of_two_leaves_are_separate_arrays():
    a = mg.Tensor(np.zeros(2), requires_grad=True)
    b = mg.Tensor(np.zeros(2), requires_grad=True)
    (a + b).backward(np.ones(2))
    a.grad *= 10.0                                # e.g. gradient clipping in place
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_an_unused_output_of_a_multi_output_op_gets_a_zero_gradient():
    x = mg.Tensor(np.arange(4.0), requires_grad=True)
    first, _ = mg.split(x, 2)
    (first * 2.0).backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 0.0, 0.0])


def test_non_leaf_tensors_keep_no_grad():
    x = mg.Tensor(np.ones(2), requires_grad=True)
    h = x * 2.0
    (h * 3.0).backward(np.ones(2))
    assert h.grad is None and x.grad is not None


# -- what backward asks of its caller ---------------------------------------------

def test_backward_of_a_non_scalar_needs_an_explicit_gradient():
    y = mg.Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"one-element tensor.*\(2, 3\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes():
    y = mg.Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        y.backward(np.ones((3, 2)))


def test_backward_on_a_tensor_that_does_not_require_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (mg.Tensor([1.0]) * 2.0).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        mg.Tensor([1, 2], requires_grad=True)


# -- freeing the graph ----------------------------------------------------------------

def test_backward_frees_the_saved_buffers():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    y = mg.exp(x)
    saved = weakref.ref(y.creator.saved[0])
    z = y.sum()
    z.backward()
    assert y.creator.saved is None
    del y                                       # the output itself is gone too ...
    assert saved() is None                      # ... and nothing kept its buffer alive


def test_a_second_backward_through_a_freed_graph_raises_a_clear_error():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    z = mg.exp(x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        z.backward()


def test_retain_graph_keeps_the_buffers():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    y = mg.exp(x)
    y.sum().backward(retain_graph=True)
    assert y.creator.saved is not None


# -- grad mode, detach, requires_grad propagation --------------------------------------

def test_no_grad_records_no_graph():
    x = mg.Tensor(np.ones(2), requires_grad=True)
    with mg.no_grad():
        y = x * 2.0
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 2.0
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    assert z.requires_grad and z.creator is not None


def test_detach_cuts_the_graph_and_shares_data():
    x = mg.Tensor(np.ones(2), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.creator is None
    y = x * 3.0 + d * 5.0
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


@pytest.mark.parametrize("a_grad, b_grad, expected", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_requires_grad_propagates_from_any_input(a_grad, b_grad, expected):
    a = mg.Tensor(np.ones(2), requires_grad=a_grad)
    b = mg.Tensor(np.ones(2), requires_grad=b_grad)
    assert (a * b).requires_grad is expected
    assert mg.exp(a @ b + b).requires_grad is expected


def test_only_inputs_that_require_grad_receive_one():
    a = mg.Tensor(np.ones(2), requires_grad=True)
    b = mg.Tensor(np.ones(2))
    (a * b).backward(np.ones(2))
    assert a.grad is not None and b.grad is None


# -- dtypes: float32 by default, float64 where asked, never a silent change ------------

@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1.0], [2.0]], np.float32),
    (np.ones(2, dtype=np.float64), np.float64), (np.ones(2, dtype=np.float32), np.float32),
    ([1, 2], np.int64), (np.array([True, False]), np.bool_),
])
def test_tensor_dtype_rules(data, dtype):
    assert mg.Tensor(data).dtype == dtype


def test_dtype_argument_converts():
    assert mg.Tensor([1, 2], dtype="float64").dtype == np.float64


# Every op applied to float32 (or float64) input must give that dtype, and so must the
# gradient: a single np.float64 constant or an np.ones() default would upcast float32.
_OPS = {
    "add": lambda x: x + 1.0, "rsub": lambda x: 2 - x, "mul": lambda x: x * 3,
    "rdiv": lambda x: 1.0 / (x + 3.0), "pow": lambda x: (x + 3.0) ** 1.5,
    "rpow": lambda x: 2.0 ** x, "exp": mg.exp, "log": lambda x: mg.log(x + 3.0),
    "sqrt": lambda x: mg.sqrt(x + 3.0), "abs": mg.abs, "tanh": mg.tanh,
    "sigmoid": mg.sigmoid, "relu": mg.relu, "gelu": mg.gelu,
    "gelu_tanh": lambda x: mg.gelu(x, approximate="tanh"),
    "maximum": lambda x: mg.maximum(x, 0.1), "minimum": lambda x: mg.minimum(x, 0.1),
    "where": lambda x: mg.where(x.data > 0, x, 0.5 * x), "clip": lambda x: mg.clip(x, -0.5, 0.5),
    "sum": lambda x: x.sum(axis=0), "mean": lambda x: x.mean(axis=1), "max": lambda x: x.max(axis=0),
    "var": lambda x: x.var(axis=1), "logsumexp": lambda x: mg.logsumexp(x, axis=1),
    "reshape": lambda x: x.reshape(-1), "transpose": lambda x: x.T, "getitem": lambda x: x[[0, 0]],
    "concatenate": lambda x: mg.concatenate([x, x]), "stack": lambda x: mg.stack([x, x]),
    "split": lambda x: mg.split(x, 3, axis=1)[1], "pad": lambda x: mg.pad(x, 1),
    "matmul": lambda x: x @ x.T, "softmax": mg.softmax, "log_softmax": mg.log_softmax,
    "cross_entropy": lambda x: mg.cross_entropy(x, mg.Tensor([0, 2]), label_smoothing=0.1),
    "embedding": lambda x: mg.embedding(mg.Tensor([[1, 0]]), x),
    "dropout": lambda x: mg.dropout(x, 0.5), "layer_norm": lambda x: mg.layer_norm(x, 3, x[0], x[1]),
    "int_operand": lambda x: x * mg.Tensor([1, 2, 3]),
    "int_matmul": lambda x: x @ mg.Tensor([[1], [2], [3]]),
    "int_concatenate": lambda x: mg.concatenate([x, mg.Tensor([[1, 2, 3]])]),
    "int_stack": lambda x: mg.stack([x, mg.Tensor([[1, 2, 3], [4, 5, 6]])]),
    "int_where": lambda x: mg.where(x.data > 0, x, mg.Tensor([0, 1, 2])),
    "numpy_float64_operand": lambda x: x * np.float64(2.0),
    "numpy_float64_bound": lambda x: x.clip(np.float64(0.5)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_OPS))
def test_ops_keep_the_dtype_of_their_input_and_gradient(name, dtype):
    x = mg.Tensor(np.array([[0.2, -0.7, 1.1], [0.4, 0.9, -1.3]], dtype=dtype), requires_grad=True)
    y = _OPS[name](x)
    assert y.dtype == dtype
    y.backward(np.ones(y.shape, dtype=dtype))
    assert x.grad.dtype == dtype


def test_float32_mixed_with_float64_is_refused_naming_both():
    a = mg.Tensor(np.ones(2, dtype=np.float32))
    b = mg.Tensor(np.ones(2, dtype=np.float64))
    with pytest.raises(TypeError, match="float32 and float64"):
        a + b


@pytest.mark.parametrize("op", [mg.exp, mg.log, mg.sqrt, mg.tanh, mg.sigmoid, mg.gelu, mg.softmax,
                                mg.log_softmax, mg.mean, mg.var, mg.logsumexp])
def test_float_valued_ops_of_integer_tensors_give_float32(op):
    assert op(mg.Tensor([[1, 2], [3, 4]])).dtype == np.float32


# -- 0-d tensors: NumPy hands back scalars, minigrad keeps arrays ------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_0d_intermediate_used_twice_backpropagates(backend):
    x = tensor(np.array([1.0, 2.0]), backend, requires_grad=True)
    s = x.sum()
    (s * s).backward()                            # d(s^2)/dx = 2 s = 6
    np.testing.assert_array_equal(mg.backend.to_numpy(x.grad), [6.0, 6.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_grad_of_a_0d_leaf_used_twice_is_a_backend_array(backend):
    x = tensor(np.array(3.0), backend, requires_grad=True)
    (x * x).backward()
    assert isinstance(x.grad, mg.backend.backend_by_name(backend).array_type)
    assert float(mg.backend.to_numpy(x.grad)) == 6.0


# -- Python protocols ------------------------------------------------------------------

def test_a_one_element_tensor_has_a_truth_value_and_converts_to_numbers():
    assert bool(mg.Tensor([0.0]) == 0.0) and not bool(mg.Tensor(0.0) > 1.0)
    assert float(mg.Tensor([2.5])) == 2.5 and int(mg.Tensor(7)) == 7


def test_the_truth_value_of_a_larger_tensor_is_ambiguous():
    with pytest.raises(ValueError, match=r"shape \(2,\) is ambiguous"):
        bool(mg.Tensor([1.0, 2.0]))


def test_a_tensor_does_not_become_a_numpy_array_implicitly():
    with pytest.raises(TypeError, match=r"\.numpy\(\)"):
        np.asarray(mg.Tensor([1.0, 2.0]))


def test_a_call_that_records_no_graph_keeps_nothing_it_saved():
    """Under no_grad() (or with no input needing a gradient) an op's saved arrays go
    with its call object: nothing references it, so they are freed at once."""

    kept = []

    class Saves(mg.Function):
        def forward(self, x):
            saved = x * 2.0
            kept.append(weakref.ref(saved))
            self.save_for_backward(saved)
            return x + 1.0

    x = mg.Tensor(np.ones((3, 4), dtype="float32"), requires_grad=True)
    with mg.no_grad():
        y = Saves()(x)
    assert y.creator is None and kept[-1]() is None
    z = Saves()(mg.Tensor(np.ones((3, 4), dtype="float32")))     # nothing needs a gradient
    assert z.creator is None and kept[-1]() is None
    w = Saves()(x)                                                 # recorded: kept for backward
    assert w.creator is not None and kept[-1]() is not None
