"""The fused GRU and LSTM steps (minigrad/ops/nn_gru_step.py, nn_lstm_step.py) against
their composed references (minigrad/nn/rnn_cell.py) and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minigrad.nn.rnn_cell import gru_step_composed, lstm_step_composed
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


# -- the whole LSTM direction as one op (ops/nn_lstm_sequence.py) --------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@settings(deadline=None)
@given(T=st.integers(1, 5), B=st.integers(1, 3), H=st.integers(1, 4), layers=st.integers(1, 2),
       bidirectional=st.booleans(), bias=st.booleans(), use_lengths=st.booleans(), seed=st.integers(0, 2**16))
def test_lstm_sequence_op_equals_the_per_step_loop(backend, T, B, H, layers, bidirectional, bias,
                                                   use_lengths, seed):
    import minigrad as mg
    from minigrad.nn import LSTM
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B).tolist() if use_lengths else None
    x_data = rng.standard_normal((B, T, 3))
    upstream = rng.standard_normal((B, T, H * (2 if bidirectional else 1)))
    results = {}
    for fused in (True, False):
        mg.manual_seed(seed)
        lstm = LSTM(3, H, num_layers=layers, bias=bias, bidirectional=bidirectional).double().to(backend)
        lstm.fused_sequence = fused
        x = tensor(x_data, backend, requires_grad=True)
        out, (h_n, c_n) = lstm(x, lengths=lengths)
        mg.autograd.backward([out, h_n, c_n], [tensor(upstream, backend).data,
                                               tensor(np.ones(h_n.shape), backend).data,
                                               tensor(np.full(c_n.shape, 0.5), backend).data])
        results[fused] = [out.numpy(), h_n.numpy(), c_n.numpy(), mg.backend.to_numpy(x.grad)] + \
            [mg.backend.to_numpy(p.grad) for p in lstm.parameters()]
    for a, b in zip(results[True], results[False]):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
