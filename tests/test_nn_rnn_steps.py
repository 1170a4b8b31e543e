"""The fused GRU and LSTM steps (minigrad/ops/nn_gru_step.py, nn_lstm_step.py) against
their composed references (minigrad/nn/rnn_cell.py) and finite differences; the fused
whole-direction ops (nn_gru_sequence.py, nn_lstm_sequence.py) against the per-step loop
of minigrad/nn/rnn.py and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad as mg
from minigrad.nn.rnn import GRU, LSTM
from minigrad.nn.rnn_cell import gru_step_composed, lstm_step_composed
from minigrad.ops._util import transposed_copy
from minigrad.ops.nn_gru_sequence import gru_sequence_fused
from minigrad.ops.nn_gru_step import gru_step_fused
from minigrad.ops.nn_lstm_step import lstm_step_fused

from helpers import BACKENDS, assert_close, check_grad, tensor

STEPS = {  # name -> (fused, composed, number of gates, number of states)
    "gru": (gru_step_fused, gru_step_composed, 3, 1),
    "lstm": (lstm_step_fused, lstm_step_composed, 4, 2),
}


def inputs(kind, B, H, bias, backend, dtype="float64", seed=0, scale=1.0):
    """gi (B, G*H), the states (B, H), W_hh (G*H, H), b_hh (G*H,) or None; all need grad."""
    _, _, G, n_states = STEPS[kind]
    rng = np.random.default_rng(seed)
    draw = lambda *shape: tensor((scale * rng.standard_normal(shape)).astype(dtype), backend,  # noqa: E731
                                 requires_grad=True)
    states = [draw(B, H) for _ in range(n_states)]
    return [draw(B, G * H), *states, draw(G * H, H)] + ([draw(G * H)] if bias else [])


def run(step, xs, bias):
    *first, W = xs if not bias else xs[:-1]
    return step(*first, W, xs[-1] if bias else None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(STEPS))
def test_fused_step_gradcheck(kind, bias, backend):
    fused = STEPS[kind][0]
    xs = inputs(kind, 2, 3, bias, backend)
    check_grad(lambda *xs: run(fused, xs, bias), xs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(STEPS))
@settings(deadline=None)
@given(B=st.integers(1, 4), H=st.integers(1, 5), bias=st.booleans(), scale=st.sampled_from([0.1, 1.0, 8.0]),
       seed=st.integers(0, 2**16))
def test_fused_step_equals_composed_in_value_and_gradient(kind, backend, B, H, bias, scale, seed):
    """scale 8 drives the gates into saturation, where a careless sigmoid overflows."""
    fused, composed, _, _ = STEPS[kind]
    results = {}
    for name, step in (("fused", fused), ("composed", composed)):
        xs = inputs(kind, B, H, bias, backend, seed=seed, scale=scale)
        out = run(step, xs, bias)
        out = out if isinstance(out, tuple) else (out,)
        upstream = np.random.default_rng(seed + 1)
        for y in out:                                         # a random upstream gradient per output
            y.backward(tensor(upstream.standard_normal(y.shape), backend).data, retain_graph=True)
        results[name] = [y.numpy() for y in out], [x.grad for x in xs]
    for a, b in zip(results["fused"][0], results["composed"][0]):
        assert_close(a, b, rtol=1e-12, atol=1e-13)
    for a, b in zip(results["fused"][1], results["composed"][1]):
        assert_close(a, np.asarray(b.tolist()), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind", list(STEPS))
def test_fused_step_keeps_float32(kind):
    fused = STEPS[kind][0]
    out = run(fused, inputs(kind, 2, 3, True, "numpy", dtype="float32"), True)
    for y in (out if isinstance(out, tuple) else (out,)):
        assert y.dtype == np.float32


# -- a whole layer direction as one op (ops/nn_gru_sequence.py, nn_lstm_sequence.py) ------

def fused_and_loop_results(cls, backend, T, B, H, layers, bidirectional, bias, use_lengths, seed):
    """For fused_sequence True and False: the layer's outputs and the gradients of the
    input, the initial states and every parameter, along random upstream gradients."""
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    x_data = rng.standard_normal((B, T, 3))
    states_data = [rng.standard_normal((layers * D, B, H)) for _ in range(1 if cls is GRU else 2)]
    results = {}
    for fused in (True, False):
        upstream = np.random.default_rng(seed + 1)
        mg.manual_seed(seed)
        with mg.use_backend(backend):
            layer = cls(3, H, num_layers=layers, bias=bias, bidirectional=bidirectional).double()
        layer.fused_sequence = fused
        x = tensor(x_data, backend, requires_grad=True)
        states = [tensor(s, backend, requires_grad=True) for s in states_data]
        out, final = layer(x, states[0] if cls is GRU else tuple(states), lengths=lengths)
        outputs = [out, final] if cls is GRU else [out, *final]
        mg.autograd.backward(outputs, [tensor(upstream.standard_normal(y.shape), backend).data
                                       for y in outputs])
        results[fused] = [y.numpy() for y in outputs] + \
            [mg.backend.to_numpy(t.grad) for t in [x, *states, *layer.parameters()]]
    return results[True], results[False]


SEQUENCE_CASES = dict(T=st.integers(1, 5), B=st.integers(1, 3), H=st.integers(1, 4),
                      layers=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
                      use_lengths=st.booleans(), seed=st.integers(0, 2**16))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(**SEQUENCE_CASES)
def test_lstm_sequence_op_equals_the_per_step_loop(backend, T, B, H, layers, bidirectional, bias,
                                                   use_lengths, seed):
    fused, loop = fused_and_loop_results(LSTM, backend, T, B, H, layers, bidirectional, bias,
                                         use_lengths, seed)
    for a, b in zip(fused, loop):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(**SEQUENCE_CASES)
def test_gru_sequence_op_equals_the_per_step_loop(backend, T, B, H, layers, bidirectional, bias,
                                                  use_lengths, seed):
    fused, loop = fused_and_loop_results(GRU, backend, T, B, H, layers, bidirectional, bias,
                                         use_lengths, seed)
    for a, b in zip(fused, loop):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


def gru_sequence_inputs(T, B, H, bias, backend, dtype="float64"):
    """gi (T, B, 3H), h0 (B, H), W_hh (3H, H)[, b_hh (3H,)]: all need grad."""
    rng = np.random.default_rng(0)
    draw = lambda *shape: tensor(rng.standard_normal(shape).astype(dtype), backend,  # noqa: E731
                                 requires_grad=True)
    return [draw(T, B, 3 * H), draw(B, H), draw(3 * H, H)] + ([draw(3 * H)] if bias else [])


def length_mask(lengths, T, backend):
    """(T, B, 1) boolean backend array, True where t < lengths[b]."""
    mask = np.arange(T)[:, None] < np.asarray(lengths)[None, :]                   # (T, B)
    return tensor(mask[:, :, None], backend).data


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [4, 2, 1]], ids=["no-mask", "mask"])
def test_gru_sequence_op_gradcheck(backend, bias, reverse, lengths):
    xs = gru_sequence_inputs(4, 3, 2, bias, backend)                              # T=4, B=3, H=2
    mask = None if lengths is None else length_mask(lengths, 4, backend)
    check_grad(lambda gi, h0, W, *b: gru_sequence_fused(gi, h0, W, *b, mask=mask, reverse=reverse), xs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]], ids=["no-mask", "mask"])
def test_gru_sequence_op_shapes_are_the_documented_ones(backend, lengths):
    gi, h0, W, b = gru_sequence_inputs(5, 3, 4, True, backend, dtype="float32")   # T=5, B=3, H=4
    mask = None if lengths is None else length_mask(lengths, 5, backend)
    out, h_T = gru_sequence_fused(gi, h0, W, b, mask=mask)
    assert (out.shape, h_T.shape, out.dtype, h_T.dtype) == ((5, 3, 4), (3, 4), np.float32, np.float32)
    mg.autograd.backward([out, h_T], [tensor(np.ones(out.shape, "float32"), backend).data,
                                      tensor(np.ones(h_T.shape, "float32"), backend).data])
    assert [t.grad.shape for t in (gi, h0, W, b)] == [(5, 3, 12), (3, 4), (12, 4), (12,)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 1), (15, 3), (16, 5), (33, 7), (48, 2)])
def test_transposed_copy_is_the_transpose_row_major(backend, shape):
    """The fused RNN ops' W_hh^T, copied in tiles of 16 rows (a last tile that is short
    included), is a^T exactly, in its own row-major memory."""
    a = tensor(np.random.default_rng(1).standard_normal(shape).astype("float32"), backend).data
    a_T = transposed_copy(a)
    assert a_T.shape == shape[::-1] and a_T.flags.c_contiguous
    np.testing.assert_array_equal(mg.backend.to_numpy(a_T), mg.backend.to_numpy(a).T)
