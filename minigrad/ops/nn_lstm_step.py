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

The composed version (``minigrad.nn.rnn_cell.lstm_step_composed``) is the test oracle.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, sigmoid_array

__all__ = ["lstm_step_fused", "lstm_cell_forward", "lstm_cell_backward"]


def lstm_cell_forward(xp, a, c):
    """Gates and new state from the pre-activations a (B, 4H) and the cell state c (B, H):
    (i, f, g, o, c', tanh(c')), each (B, H); h' = o tanh(c')."""
    H = c.shape[-1]
    i = sigmoid_array(xp, a[:, :H])                                  # input gate
    f = sigmoid_array(xp, a[:, H:2 * H])                             # forget gate
    g = xp.tanh(a[:, 2 * H:3 * H])                                   # candidate
    o = sigmoid_array(xp, a[:, 3 * H:])                              # output gate
    c_new = f * c + i * g                                            # (B, H)
    return i, f, g, o, c_new, xp.tanh(c_new)


def lstm_cell_backward(xp, g_h_new, g_c_new, i, f, g, o, tanh_c, c):
    """(g_a (B, 4H), g_c_prev (B, H)): the gradients of the pre-activations and of the
    old cell state, from those of h' and c' (the module docstring's equations)."""
    # h' = o tanh(c')
    g_o = g_h_new * tanh_c
    g_c = g_c_new + g_h_new * o * (1.0 - tanh_c * tanh_c)
    # c' = f c + i g
    g_ai = g_c * g * i * (1.0 - i)
    g_af = g_c * c * f * (1.0 - f)
    g_ag = g_c * i * (1.0 - g * g)
    g_ao = g_o * o * (1.0 - o)
    return xp.concatenate([g_ai, g_af, g_ag, g_ao], axis=-1), g_c * f


class LSTMStep(Function):
    """(x_proj, h, c, W_hh[, b_hh]) -> (h', c').  x_proj (B, 4H), h, c (B, H), W_hh (4H, H)."""

    def forward(self, x_proj, h, c, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        a = x_proj + h @ weight_hh.T                                 # (B, 4H)
        if bias_hh is not None:
            a += bias_hh
        i, f, g, o, c_new, tanh_c = lstm_cell_forward(xp, a, c)      # each (B, H)
        # Saved for backward: the gates and tanh(c') (their derivatives come from them),
        # the inputs c and h, and W_hh.
        self.save_for_backward(i, f, g, o, tanh_c, c, h, weight_hh)
        self.has_bias = bias_hh is not None
        return o * tanh_c, c_new

    def backward(self, g_h_new, g_c_new):
        i, f, g, o, tanh_c, c, h, weight_hh = self.saved
        g_a, g_c = lstm_cell_backward(get_array_module(g_h_new), g_h_new, g_c_new, i, f, g, o, tanh_c, c)
        grads = (g_a, g_a @ weight_hh, g_c, g_a.T @ h)               # x_proj, h, c, W_hh
        if self.has_bias:
            grads += (g_a.sum(axis=0),)                              # (4H,)
        return grads


def lstm_step_fused(x_proj, h, c, weight_hh, bias_hh=None):
    """One fused LSTM step: (h', c'), each (B, H). See the module docstring."""
    inputs = (x_proj, h, c, weight_hh) if bias_hh is None else (x_proj, h, c, weight_hh, bias_hh)
    return LSTMStep()(*as_floats(*inputs))
