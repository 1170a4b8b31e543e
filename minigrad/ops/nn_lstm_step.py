"""One LSTM step as one fused op, its backward derived by hand (Hochreiter &
Schmidhuber, 1997; with the forget gate of Gers et al., 2000; PyTorch's gate order).

Names: x_proj = x W_ih^T + b_ih is the input projection (computed for all steps at
once), h W_hh^T + b_hh the hidden one; g_<name> is always the gradient dL/d<name>.

Forward:

    a  = x_proj + h W_hh^T + b_hh             (B, 4H): [a_i, a_f, a_g, a_o]
    i  = sigma(a_i)   f = sigma(a_f)   g = tanh(a_g)   o = sigma(a_o)
    c' = f (.) c + i (.) g
    h' = o (.) tanh(c')

Backward, the forward in reverse, from g_h' = dL/dh' and g_c' = dL/dc':

    g_o = g_h' (.) tanh(c')
    g_c = g_c' + g_h' (.) o (.) (1 - tanh(c')^2)      the total gradient reaching c'
    g_i = g_c (.) g    g_f = g_c (.) c    g_g = g_c (.) i    g_c_prev = g_c (.) f
    g_a = [g_i i(1-i), g_f f(1-f), g_g (1-g^2), g_o o(1-o)]    derivatives from the outputs
    g_h_prev = g_a W_hh;   g_W_hh = g_a^T h;   g_b_hh = sum_B g_a;   g_x_proj = g_a

How the array code computes it (``lstm_cell_forward``, ``lstm_cell_backward``, shared
with the whole-sequence op ``nn_lstm_sequence.py``): on whole (B, 4H) blocks, in place,
a handful of array operations instead of one per gate.

- The four activations are one tanh. sigma(x) = (1 + tanh(x/2)) / 2, so with the
  per-gate vector s = [1/2, 1/2, 1, 1/2] and k = [1/2, 1/2, 0, 1/2],

      [i, f, g, o] = s (.) tanh(s (.) a) + k

  (halving is exact in floating point: the same sigmoid as (1 + tanh(x/2)) / 2,
  stable for large |x| in both directions).
- The four activation derivatives are one product. From the outputs y = [i, f, g, o]
  and u = [0, 0, 1, 0]:

      (1 - y) (.) (y + u) = [i(1-i), f(1-f), 1-g^2, o(1-o)]

The composed version (``minigrad.nn.rnn_cell.lstm_step_composed``) is the test oracle.
"""
import functools

from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats

__all__ = ["lstm_step_fused", "lstm_cell_forward", "lstm_cell_backward", "gate_constants"]


def gate_constants(xp, dtype):
    """(s, k, u), each (4, 1) to broadcast over a (B, 4, H) view of the gates: the
    per-gate vectors of the module docstring. Made once per array module and dtype (on a
    GPU each would be a copy from the host at every step); read-only."""
    return _gate_constants(xp, str(dtype))


@functools.lru_cache(maxsize=None)
def _gate_constants(xp, dtype):
    s = xp.asarray([[0.5], [0.5], [1.0], [0.5]], dtype=dtype)
    k = xp.asarray([[0.5], [0.5], [0.0], [0.5]], dtype=dtype)
    u = xp.asarray([[0.0], [0.0], [1.0], [0.0]], dtype=dtype)
    return s, k, u


def lstm_cell_forward(xp, a, c, constants, c_new, tanh_c, h_new):
    """The gates and the new state from the pre-activations a (B, 4H) and the cell state
    c (B, H). In place: ``a`` becomes the gates [i, f, g, o]; writes c' into ``c_new``,
    tanh(c') into ``tanh_c`` and h' into ``h_new`` (each (B, H))."""
    B, H = c.shape
    s, k, _ = constants
    a4 = a.reshape(B, 4, H)                                          # a view: a gate per row
    # [i, f, g, o] = s tanh(s a) + k: the three sigmoids and the tanh in one tanh
    a4 *= s
    xp.tanh(a, out=a)
    a4 *= s
    a4 += k
    i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    # c' = f c + i g
    xp.multiply(f, c, out=c_new)
    c_new += i * g
    # h' = o tanh(c')
    xp.tanh(c_new, out=tanh_c)
    xp.multiply(o, tanh_c, out=h_new)


def lstm_cell_backward(xp, g_h_new, g_c_new, gates, tanh_c, c, constants, g_a):
    """From g_h' and g_c' (B, H): writes g_a (B, 4H), the gradient of the
    pre-activations, into ``g_a`` and returns g_c_prev (B, H), that of the old cell
    state (the module docstring's equations)."""
    B, H = c.shape
    _, _, u = constants
    i, f, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H]
    o = gates[:, 3 * H:]
    # h' = o tanh(c'): g_c = g_c' + g_h' o (1 - tanh(c')^2)
    g_c = tanh_c * tanh_c
    xp.subtract(1.0, g_c, out=g_c)
    g_c *= o
    g_c *= g_h_new
    g_c += g_c_new
    # c' = f c + i g, h' = o tanh(c'): [g_i, g_f, g_g, g_o]
    xp.multiply(g_c, g, out=g_a[:, :H])
    xp.multiply(g_c, c, out=g_a[:, H:2 * H])
    xp.multiply(g_c, i, out=g_a[:, 2 * H:3 * H])
    xp.multiply(g_h_new, tanh_c, out=g_a[:, 3 * H:])
    # through the activations: g_a (.)= [i(1-i), f(1-f), 1-g^2, o(1-o)] = (1 - y)(y + u)
    scratch = 1.0 - gates                                            # 1 - y
    g_a *= scratch
    xp.add(gates.reshape(B, 4, H), u, out=scratch.reshape(B, 4, H))  # y + u
    g_a *= scratch
    g_c *= f                                                         # g_c_prev = g_c f
    return g_c


class LSTMStep(Function):
    """(x_proj, h, c, W_hh[, b_hh]) -> (h', c').  x_proj (B, 4H), h, c (B, H), W_hh (4H, H)."""

    def forward(self, x_proj, h, c, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        gates = x_proj + h @ weight_hh.T                             # (B, 4H): a
        if bias_hh is not None:
            gates += bias_hh
        constants = gate_constants(xp, gates.dtype)
        h_new, c_new, tanh_c = xp.empty_like(c), xp.empty_like(c), xp.empty_like(c)
        lstm_cell_forward(xp, gates, c, constants, c_new, tanh_c, h_new)   # gates: [i, f, g, o]
        # Saved for backward: the gates and tanh(c') (their derivatives come from them),
        # the inputs c and h, and W_hh.
        self.save_for_backward(gates, tanh_c, c, h, weight_hh, constants)
        self.has_bias = bias_hh is not None
        return h_new, c_new

    def backward(self, g_h_new, g_c_new):
        gates, tanh_c, c, h, weight_hh, constants = self.saved
        xp = get_array_module(g_h_new)
        g_a = xp.empty_like(gates)                                   # (B, 4H)
        g_c = lstm_cell_backward(xp, g_h_new, g_c_new, gates, tanh_c, c, constants, g_a)
        grads = (g_a, g_a @ weight_hh, g_c, g_a.T @ h)               # x_proj, h, c, W_hh
        if self.has_bias:
            grads += (g_a.sum(axis=0),)                              # (4H,)
        return grads


def lstm_step_fused(x_proj, h, c, weight_hh, bias_hh=None):
    """One fused LSTM step: (h', c'), each (B, H). See the module docstring."""
    inputs = (x_proj, h, c, weight_hh) if bias_hh is None else (x_proj, h, c, weight_hh, bias_hh)
    return LSTMStep()(*as_floats(*inputs))
