"""GRUCell, LSTMCell (minigrad/nn/rnn_cell.py), GRU and LSTM (minigrad/nn/rnn.py).

Float64 gradient checks of the cells and of two-layer bidirectional layers with
padded batches (w.r.t. input, initial states and every parameter); the laws of
padding (any content, NaN and inf included, in padded steps changes no output,
final state or gradient; outputs there are zero), of the reverse direction (it is a
forward layer on each sequence reversed within its length) and of the cell (unrolled,
it is the one-layer GRU/LSTM); the shapes written in the docstrings; PyTorch's
parameter names and initialization; dropout only between layers and only in
training; errors. Where PyTorch is installed, each cell and layer loaded with a
PyTorch layer's weights gives its outputs, final states and every gradient, padded
batches against PyTorch's packed sequences.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad.autograd import backward
from minigrad.nn.rnn import GRU, LSTM
from minigrad.nn.rnn_cell import GRUCell, LSTMCell
from helpers import BACKENDS, assert_close, check_grad, tensor

try:
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

LAYERS = [GRU, LSTM]
CELLS = [GRUCell, LSTMCell]
NUM_STATES = {GRU: 1, LSTM: 2, GRUCell: 1, LSTMCell: 2}     # h, or h and c
NUM_GATES = {GRU: 3, LSTM: 4, GRUCell: 3, LSTMCell: 4}
CELL_OF = {GRU: GRUCell, LSTM: LSTMCell}
TOLERANCE = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}


# -- helpers ---------------------------------------------------------------------

def make(cls, backend, *args, dtype="float64", **kwargs):
    """A layer on ``backend`` in ``dtype`` (its parameters from the backend's rng)."""
    with mg.use_backend(backend):
        module = cls(*args, **kwargs)
    return module.to(dtype)


def randn(shape, seed=0, dtype="float64"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def as_hx(states):
    """[h] -> h; [h, c] -> (h, c): the hx argument of a GRU(Cell) or an LSTM(Cell)."""
    return states[0] if len(states) == 1 else tuple(states)


def flat(result):
    """A layer's (output, h_n) or (output, (h_n, c_n)), or a cell's h or (h, c), as a list."""
    if isinstance(result, mg.Tensor) or (torch is not None and isinstance(result, torch.Tensor)):
        return [result]
    return [t for part in result for t in flat(part)]


def run(module, x, states, backend, lengths=None, gys=None, seed=1):
    """The module on NumPy input x and initial states; backward along ``gys`` (random
    by default). Returns the outputs, the upstream gradients, and the gradients of
    x, of each state and of each parameter (name -> array), all NumPy."""
    module.zero_grad()
    x = tensor(x, backend, requires_grad=True)
    states = [tensor(s, backend, requires_grad=True) for s in states]
    kwargs = {} if lengths is None else {"lengths": lengths}
    outputs = flat(module(x, as_hx(states), **kwargs))
    if gys is None:
        gys = [randn(y.shape, seed + k, y.dtype) for k, y in enumerate(outputs)]
    backward(outputs, [tensor(g, backend).data for g in gys])
    grads = [x.grad, *[s.grad for s in states]]
    param_grads = {name: mg.backend.to_numpy(p.grad) for name, p in module.named_parameters()}
    return [y.numpy() for y in outputs], gys, [mg.backend.to_numpy(g) for g in grads], param_grads


def assert_all_close(actual, expected, **tolerance):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_close(a, e, **tolerance)


# -- gradient checks ------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("batch", [(3,), ()], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_gradcheck(backend, cls, batch, bias):
    cell = make(cls, backend, 2, 3, bias=bias)                                    # I=2, H=3
    x = tensor(randn(batch + (2,)), backend, requires_grad=True)
    states = [tensor(randn(batch + (3,), seed=k + 1), backend, requires_grad=True)
              for k in range(NUM_STATES[cls])]
    n = len(states)
    check_grad(lambda x, *rest: flat(cell(x, as_hx(rest[:n]))), [x, *states, *cell.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
def test_layer_gradcheck_two_layers_bidirectional_with_lengths(backend, cls):
    layer = make(cls, backend, 2, 2, num_layers=2, bidirectional=True)           # I=2, H=2
    x = tensor(randn((3, 3, 2)), backend, requires_grad=True)                     # B=3, T=3
    states = [tensor(randn((4, 3, 2), seed=k + 1), backend, requires_grad=True)   # (L*D, B, H)
              for k in range(NUM_STATES[cls])]
    n, lengths = len(states), [3, 1, 2]
    check_grad(lambda x, *rest: flat(layer(x, as_hx(rest[:n]), lengths=lengths)),
               [x, *states, *layer.parameters()])


# -- laws ----------------------------------------------------------------------------

# Anything at all may sit in a padded step.
PAD_CONTENT = st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300]) | st.floats(-1e6, 1e6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@settings(deadline=None)
@given(data=st.data())
def test_padding_never_changes_a_result(backend, cls, data):
    B, T, extra = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    junk = data.draw(hnp.arrays(np.float64, (B, T + extra, 2), elements=PAD_CONTENT))
    layer = make(cls, backend, 2, 3, num_layers=2, bidirectional=True)
    x = randn((B, T, 2))
    states = [randn((4, B, 3), seed=k + 1) for k in range(NUM_STATES[cls])]
    padded = junk.copy()                        # x's real steps, junk in every padded step
    for b, n in enumerate(lengths):
        padded[b, :n] = x[b, :n]

    (out, *finals), gys, grads, param_grads = run(layer, x, states, backend, lengths)
    g_out_long = randn((B, T + extra, 6), seed=9)
    g_out_long[:, :T] = gys[0]
    (out_long, *finals_long), _, grads_long, param_grads_long = run(
        layer, padded, states, backend, lengths, gys=[g_out_long, *gys[1:]])

    real = np.arange(T + extra)[None, :] < np.array(lengths)[:, None]            # (B, T + extra)
    assert np.all(out_long[~real] == 0.0) and np.all(out[~real[:, :T]] == 0.0)
    assert_close(out_long[:, :T], out, rtol=1e-12, atol=1e-14)
    assert_all_close(finals_long, finals, rtol=1e-12, atol=1e-14)
    gx_long, gx = grads_long[0], grads[0]
    assert np.all(gx_long[~real] == 0.0)                                          # finite, zero
    assert_close(gx_long[:, :T], gx, rtol=1e-10, atol=1e-12)
    assert_all_close(grads_long[1:], grads[1:], rtol=1e-10, atol=1e-12)
    for name, g in param_grads.items():
        assert_close(param_grads_long[name], g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@settings(deadline=None)
@given(data=st.data())
def test_reverse_half_is_a_forward_layer_on_each_sequence_reversed(backend, cls, data):
    B, T, H = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), 2
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    bidirectional = make(cls, backend, 3, H, bidirectional=True)
    forward_only = make(cls, backend, 3, H)
    forward_only.load_state_dict({name.replace("_reverse", ""): array for name, array
                                  in bidirectional.state_dict().items() if name.endswith("_reverse")})
    x = randn((B, T, 3))
    x_reversed = x.copy()
    for b, n in enumerate(lengths):
        x_reversed[b, :n] = x[b, :n][::-1]                      # reversed within its own length
    states = [randn((2, B, H), seed=k + 1) for k in range(NUM_STATES[cls])]

    out, *finals = flat(bidirectional(tensor(x, backend), as_hx([tensor(s, backend) for s in states]),
                                      lengths=lengths))
    out_f, *finals_f = flat(forward_only(tensor(x_reversed, backend),
                                         as_hx([tensor(s[1:], backend) for s in states]), lengths=lengths))
    out, out_f = out.numpy(), out_f.numpy()
    for b, n in enumerate(lengths):
        assert_close(out[b, :n, H:], out_f[b, :n][::-1], rtol=1e-12, atol=1e-14)
    for final, final_f in zip(finals, finals_f):
        assert_close(final[1], final_f.numpy()[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@settings(deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4))
def test_cell_unrolled_over_time_is_the_one_layer_layer(backend, cls, B, T):
    layer = make(cls, backend, 2, 3)
    cell = make(CELL_OF[cls], backend, 2, 3)
    cell.load_state_dict({name.removesuffix("_l0"): array for name, array in layer.state_dict().items()})
    x = randn((B, T, 2))
    states = [randn((1, B, 3), seed=k + 1) for k in range(NUM_STATES[cls])]

    out, *finals = flat(layer(tensor(x, backend), as_hx([tensor(s, backend) for s in states])))
    state = [tensor(s[0], backend) for s in states]
    for t in range(T):
        state = flat(cell(tensor(x[:, t], backend), as_hx(state)))
        assert_close(out.numpy()[:, t], state[0].numpy(), rtol=1e-12, atol=1e-14)
    for final, s in zip(finals, state):
        assert_close(final.numpy()[0], s.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_full_lengths_equal_no_lengths(backend, cls, bidirectional):
    layer = make(cls, backend, 2, 3, num_layers=2, bidirectional=bidirectional)
    x, states = randn((2, 4, 2)), [randn((layer.num_directions * 2, 2, 3), seed=k + 1)
                                   for k in range(NUM_STATES[cls])]
    without = run(layer, x, states, backend)
    with_lengths = run(layer, x, states, backend, lengths=[4, 4], gys=without[1])
    assert_all_close(with_lengths[0], without[0], rtol=1e-12, atol=1e-14)
    assert_all_close(with_lengths[2], without[2], rtol=1e-12, atol=1e-14)
    assert_all_close(list(with_lengths[3].values()), list(without[3].values()), rtol=1e-12, atol=1e-14)


LENGTHS_FORMS = {
    "list": lambda backend: [3, 1],
    "int64 array": lambda backend: np.array([3, 1]),
    "int32 array": lambda backend: np.array([3, 1], dtype=np.int32),
    "tensor": lambda backend: tensor(np.array([3, 1]), backend),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make_lengths", LENGTHS_FORMS.values(), ids=LENGTHS_FORMS.keys())
def test_lengths_may_be_a_list_an_array_or_a_tensor(backend, make_lengths):
    layer = make(GRU, backend, 2, 3, bidirectional=True)
    x = tensor(randn((2, 3, 2)), backend)
    out, h_n = layer(x, lengths=make_lengths(backend))
    out_ref, h_n_ref = layer(x, lengths=[3, 1])
    assert np.all(out.numpy()[1, 1:] == 0.0)
    assert_close(out, out_ref.numpy(), rtol=0, atol=0)
    assert_close(h_n, h_n_ref.numpy(), rtol=0, atol=0)


# -- dropout -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
def test_dropout_is_inactive_in_eval(backend, cls):
    layer = make(cls, backend, 2, 3, num_layers=2, dropout=0.5).eval()
    plain = make(cls, backend, 2, 3, num_layers=2)
    plain.load_state_dict(layer.state_dict())
    x = tensor(randn((2, 4, 2)), backend)
    first, second, reference = flat(layer(x)), flat(layer(x)), flat(plain(x))
    assert_all_close([y.numpy() for y in first], [y.numpy() for y in second], rtol=0, atol=0)
    assert_all_close([y.numpy() for y in first], [y.numpy() for y in reference], rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("num_layers, changes", [(2, True), (1, False)],
                         ids=["between layers", "not after the last"])
def test_dropout_acts_in_training_between_layers_only(backend, cls, num_layers, changes):
    mg.manual_seed(0)
    layer = make(cls, backend, 2, 3, num_layers=num_layers, dropout=0.5)
    x = tensor(randn((2, 4, 2)), backend)
    trained = layer(x)[0].numpy()
    evaluated = layer.eval()(x)[0].numpy()
    assert (not np.array_equal(trained, evaluated)) == changes


# -- shapes, names, initialization ---------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("batch", [(5,), ()], ids=["batched", "unbatched"])
def test_cell_shapes_are_the_documented_ones(backend, cls, batch):
    I, H, G = 2, 3, NUM_GATES[cls]
    cell = make(cls, backend, I, H, dtype="float32")
    shapes = {name: p.shape for name, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (G * H, I), "weight_hh": (G * H, H),
                      "bias_ih": (G * H,), "bias_hh": (G * H,)}
    outputs = flat(cell(tensor(randn(batch + (I,), dtype="float32"), backend)))   # hx=None: zeros
    assert [y.shape for y in outputs] == [batch + (H,)] * NUM_STATES[cls]
    assert all(y.dtype == np.float32 for y in outputs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_layer_shapes_are_the_documented_ones(backend, cls, num_layers, bidirectional, batch_first):
    B, T, I, H, G = 2, 4, 3, 5, NUM_GATES[cls]
    D = 2 if bidirectional else 1
    layer = make(cls, backend, I, H, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first, dtype="float32")
    for name, p in layer.named_parameters():
        k = int(name.split("_l")[1].split("_")[0])
        documented = {"weight_ih": (G * H, I if k == 0 else D * H), "weight_hh": (G * H, H),
                      "bias_ih": (G * H,), "bias_hh": (G * H,)}[name.split("_l")[0]]
        assert p.shape == documented, name
    x = randn((B, T, I) if batch_first else (T, B, I), dtype="float32")
    output, *finals = flat(layer(tensor(x, backend), lengths=[T, 1]))
    assert output.shape == ((B, T, D * H) if batch_first else (T, B, D * H))
    assert [f.shape for f in finals] == [(num_layers * D, B, H)] * NUM_STATES[cls]
    assert all(y.dtype == np.float32 for y in [output, *finals])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls, args", [(GRUCell, ()), (LSTMCell, ()), (GRU, (2, True)), (LSTM, (2, True))],
                         ids=["GRUCell", "LSTMCell", "GRU", "LSTM"])
def test_every_parameter_starts_uniform_within_one_over_sqrt_hidden_size(backend, cls, args):
    H = 16
    mg.manual_seed(0)
    module = make(cls, backend, 8, H, *args, dtype="float32")
    bound = 1 / np.sqrt(H)
    values = np.concatenate([p.numpy().ravel() for p in module.parameters()])
    assert np.all(np.abs(values) <= bound)
    for p in module.parameters():          # each spread over the interval, not a constant
        assert p.numpy().min() < -0.5 * bound and p.numpy().max() > 0.5 * bound
    assert abs(values.std() / (bound / np.sqrt(3)) - 1) < 0.05       # U(-b, b) has std b / sqrt(3)


# -- errors -----------------------------------------------------------------------------

def _call(cls, x_shape, *args, hx_shapes=None, lengths=None, **kwargs):
    """A function of the backend calling ``cls(*args, **kwargs)`` on zeros of ``x_shape``."""
    def call(backend):
        module = make(cls, backend, *args, **kwargs)
        x = tensor(np.zeros(x_shape), backend)
        hx = None if hx_shapes is None else as_hx([tensor(np.zeros(s), backend) for s in hx_shapes])
        if lengths is None:
            return module(x, hx)
        return module(x, hx, lengths=lengths)
    return call


BAD_INPUTS = [
    ("layer input width", _call(GRU, (2, 5, 2), 3, 4), ValueError,
     r"GRU: expected input of shape \(B, T, I\) with I = 3 .*got \(2, 5, 2\)"),
    ("layer input 2-D", _call(LSTM, (5, 3), 3, 4), ValueError, r"LSTM: expected input of shape \(B, T, I\)"),
    ("time-major wording", _call(GRU, (5, 2), 3, 4, batch_first=False), ValueError,
     r"expected input of shape \(T, B, I\)"),
    ("no time steps", _call(GRU, (2, 0, 3), 3, 4), ValueError, r"B, T >= 1, got \(2, 0, 3\)"),
    ("GRU hx shape", _call(GRU, (2, 5, 3), 3, 4, num_layers=2, hx_shapes=[(1, 2, 4)]), ValueError,
     r"expected hx of shape \(num_layers \* num_directions, B, H\) = \(2, 2, 4\), got \(1, 2, 4\)"),
    ("LSTM c_0 shape", _call(LSTM, (2, 5, 3), 3, 4, bidirectional=True, hx_shapes=[(2, 2, 4), (2, 4)]),
     ValueError, r"expected c_0 of shape .* = \(2, 2, 4\), got \(2, 4\)"),
    ("LSTM hx not a pair", _call(LSTM, (2, 5, 3), 3, 4, hx_shapes=[(1, 2, 4)]), TypeError,
     r"LSTM: expected hx to be a tuple \(h_0, c_0\), got Tensor"),
    ("length above T", _call(GRU, (2, 5, 3), 3, 4, lengths=[6, 2]), ValueError,
     r"expected every length in \[1, T\] = \[1, 5\], got \[6, 2\]"),
    ("length zero", _call(LSTM, (2, 5, 3), 3, 4, lengths=[5, 0]), ValueError,
     r"expected every length in \[1, T\] = \[1, 5\], got \[5, 0\]"),
    ("lengths count", _call(GRU, (2, 5, 3), 3, 4, lengths=[5, 2, 1]), ValueError,
     r"expected B = 2 lengths \(one per sequence\), got 3"),
    ("float lengths", _call(GRU, (2, 5, 3), 3, 4, lengths=np.array([5.0, 2.0])), TypeError,
     r"expected integer lengths, got \[5.0, 2.0\]"),
    ("2-D lengths", _call(GRU, (2, 5, 3), 3, 4, lengths=[[5], [2]]), TypeError, r"expected integer lengths"),
    ("scalar lengths", _call(GRU, (2, 5, 3), 3, 4, lengths=5), TypeError,
     r"expected lengths as a list, array or tensor of B = 2 integers, got 5"),
    ("cell input width", _call(GRUCell, (2, 2), 3, 4), ValueError,
     r"GRUCell: expected input of shape \(B, 3\) or \(3,\), got \(2, 2\)"),
    ("cell hx shape", _call(GRUCell, (2, 3), 3, 4, hx_shapes=[(3, 4)]), ValueError,
     r"GRUCell: expected hx of shape \(2, 4\), got \(3, 4\)"),
    ("unbatched cell hx", _call(LSTMCell, (3,), 3, 4, hx_shapes=[(1, 4), (4,)]), ValueError,
     r"LSTMCell: expected h of shape \(4,\), got \(1, 4\)"),
    ("LSTMCell hx not a pair", _call(LSTMCell, (2, 3), 3, 4, hx_shapes=[(2, 4)]), TypeError,
     r"LSTMCell: expected hx to be a tuple \(h, c\), got Tensor"),
    ("dropout out of range", lambda backend: make(GRU, backend, 3, 4, dropout=1.5), ValueError,
     r"GRU: expected dropout a probability in \[0, 1\], got 1.5"),
    ("no layers", lambda backend: make(LSTM, backend, 3, 4, num_layers=0), ValueError,
     r"LSTM: expected num_layers a positive integer, got 0"),
    ("no hidden units", lambda backend: make(GRUCell, backend, 3, 0), ValueError,
     r"GRUCell: expected hidden_size a positive integer, got 0"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call, error, match", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend)


# -- PyTorch --------------------------------------------------------------------------

# The PyTorch comparisons run on the arrays users have; the strict backend's coverage
# of the same code paths comes from the tests above.
TORCH_BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]
TORCH_CLASS = {GRU: "GRU", LSTM: "LSTM", GRUCell: "GRUCell", LSTMCell: "LSTMCell"}


def torch_twin(cls, backend, *args, dtype, **kwargs):
    """A PyTorch module and a minigrad one holding its weights."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, TORCH_CLASS[cls])(*args, **kwargs).to(getattr(torch, dtype))
    ours = make(cls, backend, *args, dtype=dtype, **kwargs)
    ours.load_state_dict({name: p.detach().numpy() for name, p in theirs.state_dict().items()})
    return theirs, ours


def torch_run(module, x, states, gys, lengths=None, batch_first=True):
    """As ``run``, for a PyTorch module; with lengths, through packed sequences."""
    x = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in states]
    inputs = x if lengths is None else pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    result = module(inputs, as_hx(states))
    if lengths is not None:
        output, finals = result
        T = x.shape[1 if batch_first else 0]
        result = pad_packed_sequence(output, batch_first=batch_first, total_length=T)[0], finals
    outputs = flat(result)
    torch.autograd.backward(outputs, [torch.tensor(g) for g in gys])
    grads = [x.grad.numpy(), *[s.grad.numpy() for s in states]]
    param_grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return [y.detach().numpy() for y in outputs], grads, param_grads


def assert_same_as_torch(ours, theirs, x, states, backend, dtype, lengths=None, batch_first=True):
    outputs, gys, grads, param_grads = run(ours, x, states, backend, lengths)
    outputs_t, grads_t, param_grads_t = torch_run(theirs, x, states, gys, lengths, batch_first)
    tolerance = TOLERANCE[dtype]
    assert_all_close(outputs, outputs_t, **tolerance)
    assert_all_close(grads, grads_t, **tolerance)
    assert list(param_grads) == list(param_grads_t)
    for name, g in param_grads_t.items():
        assert_close(param_grads[name], g, **tolerance)


@needs_torch
@pytest.mark.parametrize("backend", TORCH_BACKENDS)
@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", [(3,), ()], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(backend, cls, dtype, batch, bias):
    theirs, ours = torch_twin(cls, backend, 4, 5, bias=bias, dtype=dtype)
    x = randn(batch + (4,), dtype=dtype)
    states = [randn(batch + (5,), seed=k + 1, dtype=dtype) for k in range(NUM_STATES[cls])]
    assert_same_as_torch(ours, theirs, x, states, backend, dtype)


# Every depth and direction batch first; time first (a transposition) for two of them.
LAYER_CONFIGS = ([dict(num_layers=n, bidirectional=d, batch_first=True) for n in (1, 2) for d in (False, True)]
                 + [dict(num_layers=1, bidirectional=False, batch_first=False),
                    dict(num_layers=2, bidirectional=True, batch_first=False)])


def _config_id(config):
    return (f"L{config['num_layers']}-{'bi' if config['bidirectional'] else 'uni'}-"
            f"{'batch_first' if config['batch_first'] else 'time_first'}")


@needs_torch
@pytest.mark.parametrize("backend", TORCH_BACKENDS)
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", LAYER_CONFIGS, ids=_config_id)
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]], ids=["full", "packed"])
def test_layer_matches_torch(backend, cls, dtype, config, lengths):
    theirs, ours = torch_twin(cls, backend, 3, 4, dtype=dtype, **config)
    B, T = 3, 5
    D = 2 if config["bidirectional"] else 1
    x = randn((B, T, 3) if config["batch_first"] else (T, B, 3), dtype=dtype)
    states = [randn((config["num_layers"] * D, B, 4), seed=k + 1, dtype=dtype)
              for k in range(NUM_STATES[cls])]
    assert_same_as_torch(ours, theirs, x, states, backend, dtype, lengths, config["batch_first"])


@needs_torch
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("bias", [True, False])
def test_layer_without_bias_matches_torch(cls, bias):
    theirs, ours = torch_twin(cls, "numpy", 3, 4, num_layers=2, bidirectional=True, bias=bias,
                              batch_first=True, dtype="float64")
    states = [randn((4, 2, 4), seed=k + 1) for k in range(NUM_STATES[cls])]
    assert_same_as_torch(ours, theirs, randn((2, 3, 3)), states, "numpy", "float64", [3, 2])


NAME_CASES = [(cls, config) for cls in LAYERS + CELLS
              for config in ([dict(), dict(bias=False)]
                             + ([dict(num_layers=3, bidirectional=True)] if cls in LAYERS else []))]


@needs_torch
@pytest.mark.parametrize("cls, config", NAME_CASES,
                         ids=[f"{TORCH_CLASS[c]}-{k}" for c, k in NAME_CASES])
def test_state_dict_names_and_shapes_are_torch(cls, config):
    theirs = getattr(torch.nn, TORCH_CLASS[cls])(3, 4, **config)
    ours = make(cls, "numpy", 3, 4, **config)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


REPR_CASES = [(GRU, dict(num_layers=2, bidirectional=True, batch_first=True)),
              (LSTM, dict(bias=False, dropout=0.25, batch_first=True)),
              (GRUCell, dict()), (LSTMCell, dict(bias=False))]


@needs_torch
@pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning")   # torch's, on 1 layer
@pytest.mark.parametrize("cls, config", REPR_CASES, ids=[TORCH_CLASS[c] for c, _ in REPR_CASES])
def test_repr_reads_as_torch(cls, config):
    assert repr(make(cls, "numpy", 3, 4, **config)) == repr(getattr(torch.nn, TORCH_CLASS[cls])(3, 4, **config))
