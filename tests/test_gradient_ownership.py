"""Who owns a gradient (minigrad/autograd.py): the engine keeps a gradient array without
a copy, adds into it or lets an op write into it only when nothing else holds it.

Each case below hands the engine an array that something else does hold (the caller's
gradient, an op's own gy returned twice, an array an op keeps, a view of one) and
checks the two promises: the gradients are right, and writing into any ``.grad``
changes nothing else (no two leaves' ``.grad`` share memory, none is an array the
caller or an op still holds). The memory that ownership saves is held by
tests/test_graph_memory.py.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import autograd
from minigrad.backend import to_numpy
from helpers import BACKENDS, tensor


def _memory(array):
    """The NumPy array under a backend array (the strict backend wraps one)."""
    return getattr(array, "_a", array)


def _check_private(leaves, others=()):
    """No leaf's .grad shares memory with another leaf's .grad or with an array of
    ``others`` (what the caller or an op still holds)."""
    grads = [leaf.grad for leaf in leaves]
    arrays = grads + list(others)
    for i, g in enumerate(grads):
        for j, other in enumerate(arrays):
            if j != i:
                assert not np.shares_memory(_memory(g), _memory(other)), (i, j)


class _Keeps(mg.Function):
    """y = 2x, whose backward hands back an array it also keeps (``self.kept``): the
    engine must copy it, not make it a .grad, nor add into it."""

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        self.kept = gy * 2
        return self.kept


class _ViewOfKept(mg.Function):
    """y = 2x, whose backward hands back a reshaped view of an array it keeps."""

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        self.kept = (gy * 2).reshape(-1, 1)
        return self.kept.reshape(gy.shape)


class _AsArrayOfKept(mg.Function):
    """y = 2x, whose backward hands back ``asarray`` of an array it keeps: the same
    object on NumPy and CuPy, a new object around the same memory on the strict backend."""

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        self.kept = gy * 2
        return mg.backend.backend_of(gy).xp.asarray(self.kept)


class _Twice(mg.Function):
    """(a, b) -> a + b whose backward hands back one new array for both inputs."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        g = gy * 1.0
        return g, g


X0 = np.array([0.5, -1.0, 2.0])
G0 = np.array([1.0, 2.0, -3.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_x_plus_x_sums_both_paths_in_a_private_grad(backend):
    x, g = tensor(X0, backend, requires_grad=True), tensor(G0, backend)
    (x + x).backward(g)                           # Add hands back the caller's g twice
    np.testing.assert_array_equal(to_numpy(x.grad), 2 * G0)
    _check_private([x], [g.data])
    np.testing.assert_array_equal(to_numpy(g.data), G0)    # the caller's array untouched


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["add", "twice"])
def test_two_leaves_handed_one_array_get_two(backend, op):
    a, b = tensor(X0, backend, requires_grad=True), tensor(-X0, backend, requires_grad=True)
    y = a + b if op == "add" else _Twice()(a, b)
    (y * 3.0).backward(tensor(G0, backend))      # Mul's gy * 3 is new: the engine's alone
    for leaf in (a, b):
        np.testing.assert_array_equal(to_numpy(leaf.grad), 3 * G0)
    _check_private([a, b])


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gradient_of_a_leaf_root_is_a_copy(backend):
    x, g = tensor(X0, backend, requires_grad=True), tensor(G0, backend)
    x.backward(g)
    _check_private([x], [g.data])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", [_Keeps, _ViewOfKept, _AsArrayOfKept])
def test_an_array_an_op_keeps_is_neither_the_grad_nor_added_into(backend, op):
    x, u = tensor(X0, backend, requires_grad=True), tensor(X0, backend, requires_grad=True)
    leaf_call, inner_call = op(), op()
    h = u * 1.0
    (leaf_call(x) + inner_call(h) + h * 3.0).backward(tensor(G0, backend))
    # x's only gradient is the leaf call's kept 2 g; u's is 2 g + 3 g: the kept 2 g of
    # the inner call and h * 3's new 3 g meet in h's pending gradient
    np.testing.assert_array_equal(to_numpy(x.grad), 2 * G0)
    np.testing.assert_array_equal(to_numpy(u.grad), 5 * G0)
    _check_private([x, u], [leaf_call.kept, inner_call.kept])
    for call in (leaf_call, inner_call):
        np.testing.assert_array_equal(to_numpy(call.kept).reshape(-1), 2 * G0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_writes_only_into_a_gradient_nothing_else_holds(backend, approximate):
    x, g = tensor(X0, backend, requires_grad=True), tensor(G0, backend)
    h = x * 1.0
    # Add hands the same g to GELU and to h's pending gradient: GELU must not write into it
    (mg.gelu(h, approximate=approximate) + h).backward(g)
    w = tensor(X0, backend, requires_grad=True)
    mg.gelu(w, approximate=approximate).backward(g)          # the caller's g: not into it either
    np.testing.assert_array_equal(to_numpy(g.data), G0)
    np.testing.assert_allclose(to_numpy(x.grad), to_numpy(w.grad) + G0, rtol=1e-12)
    v = tensor(X0, backend, requires_grad=True)
    (mg.gelu(v, approximate=approximate) * 1.0).backward(g)  # Mul's new gy: written into
    np.testing.assert_allclose(to_numpy(v.grad), to_numpy(w.grad), rtol=1e-12)
    _check_private([x, w, v], [g.data])


@pytest.mark.parametrize("backend", BACKENDS)
def test_retain_graph_and_two_backward_calls_accumulate_in_private_grads(backend):
    x = tensor(X0, backend, requires_grad=True)
    W = tensor(np.arange(6.0).reshape(2, 3), backend, requires_grad=True)
    keeps = _Keeps()
    y = keeps(mg.nn.functional.linear(x, W)).sum()          # W's gradient: a new product
    y.backward(retain_graph=True)
    first = to_numpy(W.grad).copy()
    y.backward()                                             # the same graph again
    (W * 2.0).sum().backward()                               # and another graph
    np.testing.assert_array_equal(to_numpy(W.grad), 2 * first + 2.0)
    np.testing.assert_array_equal(first, 2.0 * np.tile(X0, (2, 1)))
    _check_private([x, W], [keeps.kept])


def test_the_engine_owns_gradients_on_numpy():
    """The probe walk found reference counts that mean something on this interpreter
    (else every first gradient is copied and the memory tests fail too)."""
    x = mg.Tensor(X0.copy(), requires_grad=True)
    (x * 2.0).sum().backward()
    assert autograd._counts


def test_the_first_backward_of_a_process_may_run_inside_no_grad(monkeypatch):
    """backward() inside no_grad() works, as in PyTorch (no_grad stops recording, not
    the walk): the probe walk of the first backward still measures the counts."""
    monkeypatch.setattr(autograd, "_counts", None)               # as in a fresh process
    x = mg.Tensor(X0.copy(), requires_grad=True)
    y = (x * 2.0).sum()
    with mg.no_grad():
        y.backward()
    np.testing.assert_array_equal(x.grad, 2.0 * np.ones(3))
    assert autograd._counts


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_a_backward_called_by_hand_after_a_walk_writes_into_no_caller_array(approximate):
    """The engine's word that it owns a gy holds for its own call of backward only: a
    call by hand afterwards (the graph retained) must not write into the caller's gy."""
    x = mg.Tensor(X0.copy(), requires_grad=True)
    h = mg.gelu(x, approximate=approximate)
    (h * 2.0).sum().backward(retain_graph=True)    # Mul's new gy: GELU may write into it
    g = G0.copy()
    gx = h.creator.backward(g)
    np.testing.assert_array_equal(g, G0)
    assert not np.shares_memory(gx, g)


class _ReturnsSaved(mg.Function):
    """y = 3x whose backward hands back its saved tuple itself (a gradient made in
    forward, right for a scalar loss's gy of 1): the tuple keeps the array, unseen by
    the count of references to the array."""

    def forward(self, x):
        self.save_for_backward(x * 0.0 + 3.0)
        return x * 3.0

    def backward(self, gy):
        return self.saved


def test_an_array_kept_in_the_tuple_backward_returns_is_not_taken_as_owned():
    x = mg.Tensor(X0.copy(), requires_grad=True)
    call = _ReturnsSaved()
    y = call(x).sum()
    for step in (1, 2, 3):
        y.backward(retain_graph=True)
        np.testing.assert_array_equal(x.grad, 3.0 * step * np.ones(3))
    np.testing.assert_array_equal(call.saved[0], 3.0 * np.ones(3))    # the op's array untouched


def _over_a_bytearray(g):
    return np.frombuffer(bytearray(g.tobytes()), dtype=g.dtype)               # (n,): 1-D g


def _through_torch(g):
    torch = pytest.importorskip("torch")
    return (torch.from_numpy(g.copy()) * 1.0).numpy()


class _ForeignMemory(mg.Function):
    """y = 2x whose backward hands back an array over memory NumPy does not own: its
    base is a bytearray or a PyTorch tensor, not an array."""

    def __init__(self, make):
        self.make = make

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return self.make(gy * 2)


@pytest.mark.parametrize("make", [_over_a_bytearray, _through_torch])
def test_a_gradient_over_memory_numpy_does_not_own_is_copied(make):
    x = mg.Tensor(X0.copy(), requires_grad=True)
    _ForeignMemory(make)(x).backward(G0.copy())
    np.testing.assert_array_equal(x.grad, 2 * G0)
    assert x.grad.base is None or isinstance(x.grad.base, np.ndarray)


def test_another_thread_walking_while_the_first_backward_measures_the_counts(monkeypatch):
    """The first backward measures the counts on a probe walk; a backward that another
    thread runs meanwhile neither spoils the measurement nor owns anything (it copies)."""
    import threading

    monkeypatch.setattr(autograd, "_counts", None)               # as in a fresh process
    other = {}

    def walk_in_another_thread():
        a = mg.Tensor(X0.copy(), requires_grad=True)
        (a * 3.0).sum().backward()
        other["grad"] = a.grad

    probe_backward = autograd._OwnershipProbe.backward

    def probe_backward_with_a_neighbour(self, gy):
        thread = threading.Thread(target=walk_in_another_thread)
        thread.start()
        thread.join()                                            # it runs inside the probe's walk
        return probe_backward(self, gy)
    monkeypatch.setattr(autograd._OwnershipProbe, "backward", probe_backward_with_a_neighbour)
    x = mg.Tensor(X0.copy(), requires_grad=True)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, 2.0 * np.ones(3))
    np.testing.assert_array_equal(other["grad"], 3.0 * np.ones(3))
    assert autograd._counts                                      # measured, not switched off
