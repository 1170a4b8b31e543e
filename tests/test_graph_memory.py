"""What the recorded graph keeps alive (minigrad/function.py, "What the graph holds").

The graph reaches an op's input through an edge (its creator and output index), never
through the input Tensor, so an activation that no backward needs is freed as soon as
the user drops it; what an op saved lives until that op's backward. The memory tests
use the NumPy backend: weak references and ``tracemalloc`` see NumPy's buffers.
"""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import minigrad as mg
from helpers import BACKENDS, tensor


def _refs(t):
    """Weak references to a Tensor and to its array."""
    return weakref.ref(t), weakref.ref(t.data)


def _dead(refs):
    gc.collect()                                  # a cycle would hide a leak: collect first
    return all(ref() is None for ref in refs)


# -- what the graph does not keep --------------------------------------------------------

def test_an_intermediate_the_user_dropped_is_freed_when_no_op_saved_it():
    x = mg.Tensor(np.arange(4.0), requires_grad=True)
    h = x + 1.0                                   # Add saves nothing
    g = h * 2.0                                   # Mul by a constant saves the constant only
    y = g.sum()
    refs = _refs(h) + _refs(g)
    del h, g
    assert _dead(refs)                            # only y is referenced: the chain's arrays went
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0, 2.0])


def test_an_input_that_needs_no_gradient_is_not_kept():
    x = mg.Tensor(np.ones(3), requires_grad=True)
    mask = mg.Tensor(np.full(3, 5.0))              # requires no grad; Add saves nothing
    y = (x + mask).sum()
    refs = _refs(mask)
    del mask
    assert _dead(refs)
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


def test_what_an_op_saved_lives_until_its_backward_and_no_longer():
    x = mg.Tensor(np.arange(3.0), requires_grad=True)
    e = mg.exp(x)                                 # Exp saves its output: de/dx = e
    y = (e * 3.0).sum()
    saved = weakref.ref(e.data)
    del e
    gc.collect()
    assert saved() is not None                    # the user dropped it, Exp's backward needs it
    y.backward()
    assert _dead([saved])                         # gone with Exp's backward (y is still alive)
    np.testing.assert_allclose(x.grad, 3.0 * np.exp(np.arange(3.0)))


def test_the_peak_memory_of_a_deep_chain_is_a_few_activations_not_its_depth():
    depth, n = 64, 1 << 15                        # 64 ops on 256 KB arrays: 16 MB if all were kept
    x = mg.Tensor(np.linspace(-1.0, 1.0, n), requires_grad=True)
    gy = np.ones(n)
    one_activation = x.data.nbytes
    gc.collect()
    tracemalloc.start()
    try:
        y = x
        for i in range(depth):                    # ops whose backward needs no input
            y = y + 1.0 if i % 2 else y * 0.5
        y.backward(gy)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The chain, the walk's gradients and the leaf's .grad: a few arrays at any moment.
    assert peak < 6 * one_activation, f"peak: {peak / one_activation:.1f} activations, depth {depth}"
    np.testing.assert_allclose(x.grad, np.full(n, 0.5 ** (depth // 2)))


# -- the walk still does what it did -------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_retain_graph_walks_again_with_the_same_gradients_and_keeps_no_dropped_activation(backend):
    x = tensor(np.array([0.1, -0.4, 0.8]), backend, requires_grad=True)
    h = x * 2.0                                   # saved by no op: gone once dropped
    a = mg.exp(h)                                 # Exp saves a; Mul(a, a) saves a twice
    y = (a * a + a).sum()                         # y = sum(e^{4x} + e^{2x})
    h_ref = weakref.ref(h)
    del h, a
    assert _dead([h_ref])
    gradients = []
    for _ in range(3):
        x.grad = None
        y.backward(retain_graph=len(gradients) < 2)   # the third walk frees the graph
        gradients.append(mg.backend.to_numpy(x.grad))
    x0 = np.array([0.1, -0.4, 0.8])
    expected = 4 * np.exp(4 * x0) + 2 * np.exp(2 * x0)
    for g in gradients:
        np.testing.assert_allclose(g, expected, rtol=1e-12)
    with pytest.raises(RuntimeError, match=r"graph a second time.*retain_graph=True"):
        y.backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dropped_intermediate_used_twice_accumulates_both_paths(backend):
    x0 = np.array([0.3, -0.2, 0.5, 0.1])
    x = tensor(x0, backend, requires_grad=True)
    a = mg.tanh(x)                                # used by split and by a * 2
    first, second = mg.split(a, 2)                # second unused: a zero gradient
    y = (first * first).sum() + (a * 2.0).sum()   # first used twice by one Mul
    del a, first, second
    y.backward()
    t = np.tanh(x0)
    g_a = 2.0 + np.concatenate([2 * t[:2], np.zeros(2)])
    np.testing.assert_allclose(mg.backend.to_numpy(x.grad), (1 - t ** 2) * g_a, rtol=1e-12)


class _NoGradient(mg.Function):
    """y = 2x whose backward returns None: no gradient passes through it."""

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return None


def test_a_call_whose_outputs_received_no_gradient_passes_none_on_as_pytorch():
    x = mg.Tensor(np.ones(2), requires_grad=True)
    _NoGradient()(mg.exp(x)).sum().backward()     # exp's output receives nothing
    assert x.grad is None
    w = mg.Tensor(np.ones(2), requires_grad=True)
    (_NoGradient()(mg.exp(w)).sum() + w.sum()).backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


# -- what the ops keep for backward ---------------------------------------------------------

def _calls(y):
    """Every Function call of the graph that made y."""
    calls, stack = [], [y.creator]
    while stack:
        fn = stack.pop()
        if fn is None or fn in calls:
            continue
        calls.append(fn)
        stack.extend(edge.creator for edge in fn.input_edges if hasattr(edge, "output_index"))
    return calls


def _the_call(y, name):
    """The one call of type ``name`` in the graph of y."""
    found = [fn for fn in _calls(y) if type(fn).__name__ == name]
    assert len(found) == 1, f"{len(found)} calls of {name}"
    return found[0]


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_keeps_no_array_of_the_scores_size_for_backward(need_weights):
    """The fused attention core rebuilds P (B, h, T, S) in backward (ops/nn_attention.py):
    it saves q, k and v; without need_weights P is not even an
    output, so the whole (B, h, T, S) array is freed when forward returns."""
    B, T, E, h = 2, 6, 8, 2                             # d_k = 4 < T: q is smaller than P
    mha = mg.nn.MultiheadAttention(E, h).double()
    x = mg.Tensor(np.random.default_rng(0).standard_normal((B, T, E)), requires_grad=True)
    causal = mg.nn.Transformer.generate_square_subsequent_mask(T)
    out, weights = mha(x, x, x, attn_mask=causal, need_weights=need_weights,
                       average_attn_weights=False)
    core = _the_call(out, "AttentionCore")
    sizes = [a.size for a in core.saved if a is not None]
    assert max(sizes) < B * h * T * T, sizes            # q, k, v: B h T d_k each
    assert (weights is None) == (not need_weights)
    assert len(core.output_meta) == (2 if need_weights else 1)


def _peak_in_arrays(run, like):
    """tracemalloc's peak over ``run()``, in arrays of ``like``'s size."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / like.nbytes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward_makes_one_array_of_the_input_size(approximate):
    """GELU's backward writes dy/dx (.) gy block by block into its result: one new array
    of x's size and a block's temporaries (PyTorch's kernel makes the one array), where
    whole-array expressions held three or four at once."""
    n = 1 << 20
    x = mg.Tensor(np.linspace(-4.0, 4.0, n, dtype=np.float32), requires_grad=True)
    y = mg.gelu(x, approximate=approximate)
    gy = np.ones(n, np.float32)
    peak = _peak_in_arrays(lambda: y.creator.backward(gy), x.data)
    assert peak < 1.1, f"{peak:.2f} arrays of x's size"


def test_layer_norm_backward_makes_two_arrays_of_the_input_size():
    """LayerNorm's backward builds gx in place in g_x_hat's array, with one array to work
    in (the products' temporaries held three at once)."""
    x = mg.Tensor(np.random.default_rng(0).standard_normal((256, 1024)), requires_grad=True)
    norm = mg.nn.LayerNorm(1024).double()
    y = norm(x)
    gy = np.random.default_rng(1).standard_normal(x.shape)
    peak = _peak_in_arrays(lambda: y.creator.backward(gy), x.data)
    assert peak < 2.1, f"{peak:.2f} arrays of x's size"


def test_log_sum_exp_makes_one_array_of_the_input_size():
    """log sum exp(x) (cross-entropy's forward, the logits' size: W2's peak) takes exp
    in place in the array of x - m: one array of x's size, not x - m and exp beside it."""
    from minigrad.ops.reductions import logsumexp_array
    x = np.random.default_rng(0).standard_normal((512, 1000)).astype(np.float32)
    peak = _peak_in_arrays(lambda: logsumexp_array(x, (1,)), x)
    assert peak < 1.1, f"{peak:.2f} arrays of x's size"


def _saved_bytes(call, *leave_out):
    """The bytes the arrays ``call`` saved keep alive: a view keeps its whole base, so
    each base is counted once; arrays in ``leave_out`` (the weights) are not counted."""
    bases = {}
    for a in call.saved:
        if a is None or any(a is b for b in leave_out):
            continue
        while a.base is not None:
            a = a.base
        bases[id(a)] = a.nbytes
    return sum(bases.values())


def test_a_gru_step_keeps_five_state_widths_per_row():
    """GRUStep saves the gates r, z, n (3H), h_proj_n (H) and h (H): h_proj_n copied out
    of h_proj (B, 3H), whose view would keep all three thirds until backward."""
    B, I, H = 4, 3, 8
    cell = mg.nn.GRUCell(I, H).double()
    x = mg.Tensor(np.random.default_rng(0).standard_normal((B, I)))
    h = mg.Tensor(np.random.default_rng(1).standard_normal((B, H)), requires_grad=True)
    step = _the_call(cell(x, h), "GRUStep")
    assert _saved_bytes(step, cell.weight_hh.data) == 5 * B * H * 8


# -- gradients the engine owns (minigrad/autograd.py, "Who owns a gradient") ---------------

def test_a_weight_gradient_becomes_its_grad_without_a_copy():
    """W's gradient gy^T x is a new product that only the engine holds: it becomes W.grad
    itself, as PyTorch's AccumulateGrad takes it over (a copy made a second array of
    W's size, at the end of the walk where memory peaks: +1.05 MB on W6)."""
    W = mg.Tensor(np.ones((512, 512)), requires_grad=True)
    y = mg.nn.functional.linear(mg.Tensor(np.ones((1, 512))), W)
    peak = _peak_in_arrays(lambda: y.backward(np.ones((1, 512))), W.data)
    assert peak < 1.1, f"{peak:.2f} arrays of W's size"


def test_two_new_gradients_of_one_output_are_summed_in_place():
    """h receives h * 2's and h * 3's gradients, two new arrays: the second is added into
    the first, no third array for the sum."""
    n = 1 << 16
    x = mg.Tensor(np.ones(n), requires_grad=True)
    h = x * 1.0
    y = h * 2.0 + h * 3.0
    gy = np.ones(n)
    peak = _peak_in_arrays(lambda: y.backward(gy), gy)
    assert peak < 2.5, f"{peak:.2f} arrays of x's size"             # the two branches' arrays
    np.testing.assert_array_equal(x.grad, np.full(n, 5.0))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward_writes_into_a_gradient_the_engine_owns(approximate):
    """GELU's gy from y * 1.0's backward is the engine's alone: GELU writes dy/dx (.) gy into
    it, and that array becomes x.grad: one array of x's size over the whole backward
    (a new result and a copy for .grad made three)."""
    n = 1 << 20
    x = mg.Tensor(np.linspace(-4.0, 4.0, n, dtype=np.float32), requires_grad=True)
    y = mg.gelu(x, approximate=approximate) * 1.0
    gy = np.ones(n, np.float32)
    peak = _peak_in_arrays(lambda: y.backward(gy), x.data)
    assert peak < 1.1, f"{peak:.2f} arrays of x's size"


@pytest.mark.parametrize("retain_graph", [False, True])
def test_linear_backward_lets_its_input_go_before_it_makes_the_input_gradient(retain_graph, monkeypatch):
    """Linear's backward reads its saved input x for dL/dW and lets it go before it makes
    dL/dx (N, in), so the two are never held at once (BERT's and GPT's peak: x is the
    feed-forward's GELU output); with retain_graph=True it keeps x for the second walk."""
    from minigrad.ops import nn_linear
    rng = np.random.default_rng(0)
    x0 = mg.Tensor(rng.standard_normal((64, 32)), requires_grad=True)
    weight = mg.Tensor(rng.standard_normal((8, 32)), requires_grad=True)
    h = x0 * 2.0                                   # an intermediate only Linear keeps
    alive = weakref.ref(h.data)
    y = mg.nn.functional.linear(h, weight)
    del h
    seen = []
    real = nn_linear.matmul_arrays

    def spy(a, b):
        seen.append(alive() is not None)
        return real(a, b)
    monkeypatch.setattr(nn_linear, "matmul_arrays", spy)
    gy = rng.standard_normal((64, 8))
    y.backward(gy, retain_graph=retain_graph)
    assert seen == [True, retain_graph]            # dL/dW reads x; gone when dL/dx is made
    first = (x0.grad.copy(), weight.grad.copy())
    if retain_graph:
        x0.grad = weight.grad = None
        y.backward(gy)
        np.testing.assert_array_equal(x0.grad, first[0])
        np.testing.assert_array_equal(weight.grad, first[1])
