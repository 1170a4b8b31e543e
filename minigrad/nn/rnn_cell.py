"""Recurrent cells: ``GRUCell`` and ``LSTMCell``, one time step each, as PyTorch.

The step math lives in two functions, ``gru_step`` and ``lstm_step``, that start
from the input projection x_proj = x W_ih^T + b_ih already computed. A cell computes
x_proj for its one step; the sequence layers (``minigrad.nn.rnn``) compute it for all time
steps with one matrix product and call the same functions step by step, so one
piece of code is the math of both.

Each step has two versions: ``*_step_composed``, written with minigrad's ops (the
engine derives the gradient: the readable reference), and the fused op of
``minigrad/ops/nn_gru_step.py`` / ``nn_lstm_step.py`` (one forward and one
hand-derived backward per step, no graph of a dozen small ops), which
``gru_step`` / ``lstm_step`` use. The tests hold the two equal.

Glossary (PyTorch's names):

    x_t      the input at time t                     (B, I)
    h_t      the hidden state (and output)           (B, H)
    c_t      the LSTM cell state (its memory)        (B, H)
    W_i*     input-to-hidden weights of one gate     (H, I)   rows of weight_ih
    W_h*     hidden-to-hidden weights of one gate    (H, H)   rows of weight_hh
    b_i*, b_h*  the matching biases                  (H,)     slices of bias_ih, bias_hh
    sigma    the logistic sigmoid 1 / (1 + e^-x);  (.) the elementwise product
    B batch, I input size, H hidden size

"""
import math
import numbers

from minigrad import creation
from minigrad.backend import get_array_module
from minigrad.nn import init
from minigrad.nn.functional import linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops import matmul, sigmoid, split, tanh
from minigrad.ops.nn_gru_step import gru_step_fused
from minigrad.ops.nn_lstm_step import lstm_step_fused
from minigrad.tensor import Tensor

__all__ = ["GRUCell", "LSTMCell", "gru_step", "lstm_step", "gru_step_composed", "lstm_step_composed"]


def check_positive_int(owner, name, value):
    """A ValueError naming ``owner`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{owner}: expected {name} a positive integer, got {value!r}")


def _hidden_projection(h, weight_hh, bias_hh):
    """h_proj = h W_hh^T + b_hh: h (B, H) -> (B, G*H)."""
    h_proj = matmul(h, weight_hh.T)                               # (B, G*H)
    return h_proj if bias_hh is None else h_proj + bias_hh


def gru_step(x_proj, h, weight_hh, bias_hh=None):
    """One GRU step (the fused op): h' (B, H); the equations are gru_step_composed's."""
    return gru_step_fused(x_proj, h, weight_hh, bias_hh)


def lstm_step(x_proj, h, c, weight_hh, bias_hh=None):
    """One LSTM step (the fused op): (h', c'); the equations are lstm_step_composed's."""
    return lstm_step_fused(x_proj, h, c, weight_hh, bias_hh)


def gru_step_composed(x_proj, h, weight_hh, bias_hh=None):
    """One GRU step from the input projection x_proj = x W_ih^T + b_ih.

        r  = sigma(x_proj_r + W_hr h + b_hr)
        z  = sigma(x_proj_z + W_hz h + b_hz)
        n  = tanh(x_proj_n + r (.) (W_hn h + b_hn))
        h' = (1 - z) (.) n + z (.) h

    x_proj (B, 3H), h (B, H), weight_hh (3H, H), bias_hh (3H,) or None -> h' (B, H).

    The test oracle of the fused op ``gru_step_fused`` (``minigrad/ops/nn_gru_step.py``).
    """
    h_proj = _hidden_projection(h, weight_hh, bias_hh)            # (B, 3H)
    x_proj_r, x_proj_z, x_proj_n = split(x_proj, 3, axis=-1)      # each (B, H)
    h_proj_r, h_proj_z, h_proj_n = split(h_proj, 3, axis=-1)      # each (B, H)
    r = sigmoid(x_proj_r + h_proj_r)                              # reset gate
    z = sigmoid(x_proj_z + h_proj_z)                              # update gate
    n = tanh(x_proj_n + r * h_proj_n)                             # candidate state
    return (1 - z) * n + z * h


def lstm_step_composed(x_proj, h, c, weight_hh, bias_hh=None):
    """One LSTM step from the input projection x_proj = x W_ih^T + b_ih.

        i  = sigma(x_proj_i + W_hi h + b_hi)
        f  = sigma(x_proj_f + W_hf h + b_hf)
        g  = tanh(x_proj_g + W_hg h + b_hg)
        o  = sigma(x_proj_o + W_ho h + b_ho)
        c' = f (.) c + i (.) g
        h' = o (.) tanh(c')

    x_proj (B, 4H), h and c (B, H), weight_hh (4H, H), bias_hh (4H,) or None
    -> (h', c'), each (B, H).

    The test oracle of the fused op ``lstm_step_fused`` (``minigrad/ops/nn_lstm_step.py``).
    """
    gates = x_proj + _hidden_projection(h, weight_hh, bias_hh)    # (B, 4H)
    i, f, g, o = split(gates, 4, axis=-1)                         # each (B, H)
    i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    c = f * c + i * g
    h = o * tanh(c)
    return h, c


class _CellBase(Module):
    """The parameters and the shape checks that GRUCell and LSTMCell share."""

    num_gates = None          # 3 for the GRU, 4 for the LSTM

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        check_positive_int(type(self).__name__, "hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = self.num_gates * hidden_size
        self.weight_ih = Parameter(creation.zeros(G, input_size))
        self.weight_hh = Parameter(creation.zeros(G, hidden_size))
        if bias:
            self.bias_ih = Parameter(creation.zeros(G))
            self.bias_hh = Parameter(creation.zeros(G))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def _batched_input(self, x):
        """x as (B, I), and whether it came unbatched as (I,)."""
        name, I = type(self).__name__, self.input_size
        if x.ndim not in (1, 2) or x.shape[-1] != I:
            raise ValueError(f"{name}: expected input of shape (B, {I}) or ({I},), got {x.shape}")
        if x.ndim == 1:
            return x.reshape(1, I), True                           # (1, I)
        return x, False

    def _batched_state(self, state, x, unbatched, what):
        """A state (h or c) as (B, H): zeros for None, checked against x otherwise."""
        B, H = x.shape[0], self.hidden_size
        if state is None:
            xp = get_array_module(x.data)
            return Tensor(xp.zeros((B, H), dtype=x.dtype))        # (B, H)
        expected = (H,) if unbatched else (B, H)
        if tuple(state.shape) != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected}, "
                             f"got {tuple(state.shape)}")
        return state.reshape(B, H)                                 # (B, H)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class GRUCell(_CellBase):
    """A gated recurrent unit (Cho et al., 2014, "Learning Phrase Representations
    using RNN Encoder-Decoder for Statistical Machine Translation", arXiv:1406.1078).

        r  = sigma(W_ir x + b_ir + W_hr h + b_hr)          reset gate
        z  = sigma(W_iz x + b_iz + W_hz h + b_hz)          update gate
        n  = tanh(W_in x + b_in + r (.) (W_hn h + b_hn))   candidate state
        h' = (1 - z) (.) n + z (.) h

    As PyTorch (and cuDNN), the reset gate multiplies W_hn h + b_hn, the hidden
    projection with its bias; the paper writes W (r (.) h), resetting h before the
    product. Both are GRUs; this one lets all three hidden projections be one
    matrix product. Symbols: see the module docstring.

    >>> import minigrad as mg
    >>> cell = mg.nn.GRUCell(4, 8)
    >>> h = cell(mg.randn(3, 4))                       # h = 0 before the first step
    >>> cell(mg.randn(3, 4), h).shape
    (3, 8)

    Args:
        input_size: I.  hidden_size: H.  bias: whether to learn b_ih and b_hh.

    Shapes:
        input x:   (B, I) or unbatched (I,)
        hx:        (B, H) or (H,); zeros when None
        output h': (B, H) or (H,)
        weight_ih: (3H, I) = [W_ir; W_iz; W_in]    bias_ih: (3H,)
        weight_hh: (3H, H) = [W_hr; W_hz; W_hn]    bias_hh: (3H,)

    Initialization (PyTorch's): every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
    """

    num_gates = 3

    def forward(self, x, hx=None):
        x, unbatched = self._batched_input(x)                      # (B, I)
        h = self._batched_state(hx, x, unbatched, "hx")            # (B, H)
        x_proj = linear(x, self.weight_ih, self.bias_ih)           # (B, 3H)
        h = gru_step(x_proj, h, self.weight_hh, self.bias_hh)      # (B, H)
        return h.reshape(self.hidden_size) if unbatched else h


class LSTMCell(_CellBase):
    """A long short-term memory cell (Hochreiter & Schmidhuber, 1997, "Long
    Short-Term Memory", Neural Computation 9(8):1735-1780), with the forget gate of
    Gers, Schmidhuber & Cummins (2000, "Learning to Forget: Continual Prediction
    with LSTM", Neural Computation 12(10):2451-2471).

        i  = sigma(W_ii x + b_ii + W_hi h + b_hi)          input gate
        f  = sigma(W_if x + b_if + W_hf h + b_hf)          forget gate
        g  = tanh(W_ig x + b_ig + W_hg h + b_hg)           candidate cell
        o  = sigma(W_io x + b_io + W_ho h + b_ho)          output gate
        c' = f (.) c + i (.) g
        h' = o (.) tanh(c')

    No peephole connections, as PyTorch. Symbols: see the module docstring.

    >>> import minigrad as mg
    >>> cell = mg.nn.LSTMCell(4, 8)
    >>> h, c = cell(mg.randn(3, 4))                    # h = c = 0 before the first step
    >>> h, c = cell(mg.randn(3, 4), (h, c))
    >>> h.shape, c.shape
    ((3, 8), (3, 8))

    Args:
        input_size: I.  hidden_size: H.  bias: whether to learn b_ih and b_hh.

    Shapes:
        input x:   (B, I) or unbatched (I,)
        hx:        a tuple (h, c), each (B, H) or (H,); zeros when None
        output:    (h', c'), each (B, H) or (H,)
        weight_ih: (4H, I) = [W_ii; W_if; W_ig; W_io]    bias_ih: (4H,)
        weight_hh: (4H, H) = [W_hi; W_hf; W_hg; W_ho]    bias_hh: (4H,)

    Initialization (PyTorch's): every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
    """

    num_gates = 4

    def forward(self, x, hx=None):
        x, unbatched = self._batched_input(x)                      # (B, I)
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"LSTMCell: expected hx to be a tuple (h, c), got {type(hx).__name__}")
        h = self._batched_state(hx[0], x, unbatched, "h")          # (B, H)
        c = self._batched_state(hx[1], x, unbatched, "c")          # (B, H)
        x_proj = linear(x, self.weight_ih, self.bias_ih)           # (B, 4H)
        h, c = lstm_step(x_proj, h, c, self.weight_hh, self.bias_hh)   # each (B, H)
        if unbatched:
            return h.reshape(self.hidden_size), c.reshape(self.hidden_size)
        return h, c
