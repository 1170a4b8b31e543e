"""One LSTM step as one fused op, its backward derived by hand (Hochreiter &
Schmidhuber, 1997; with the forget gate of Gers et al., 2000; PyTorch's gate order).

Forward, from the input projection gi = x W_ih^T + b_ih (computed for all steps at once):

    a  = gi + h W_hh^T + b_hh                 (B, 4H): [a_i, a_f, a_g, a_o]
    i  = sigma(a_i)   f = sigma(a_f)   g = tanh(a_g)   o = sigma(a_o)
    c' = f (.) c + i (.) g
    h' = o (.) tanh(c')

Backward, the forward in reverse, with gh' = dL/dh' and gc' = dL/dc':

    go  = gh' (.) tanh(c')
    gc  = gc' + gh' (.) o (.) (1 - tanh(c')^2)        the total gradient reaching c'
    gi_ = gc (.) g     gf = gc (.) c     gg = gc (.) i     gc_prev = gc (.) f
    g_a = [gi_ i(1-i), gf f(1-f), gg (1-g^2), go o(1-o)]    derivatives from the outputs
    gh_prev = g_a W_hh;   gW_hh = g_a^T h;   gb_hh = sum_B g_a;   g_gi = g_a

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


def lstm_cell_backward(xp, gh_new, gc_new, i, f, g, o, tanh_c, c):
    """(g_a (B, 4H), gc (B, H)): the gradients of the pre-activations and of the old
    cell state, from those of h' and c' (the module docstring's equations)."""
    # h' = o tanh(c')
    go = gh_new * tanh_c
    gc = gc_new + gh_new * o * (1.0 - tanh_c * tanh_c)
    # c' = f c + i g
    g_ai = gc * g * i * (1.0 - i)
    g_af = gc * c * f * (1.0 - f)
    g_ag = gc * i * (1.0 - g * g)
    g_ao = go * o * (1.0 - o)
    return xp.concatenate([g_ai, g_af, g_ag, g_ao], axis=-1), gc * f


class LSTMStep(Function):
    """(gi, h, c, W_hh[, b_hh]) -> (h', c').  gi (B, 4H), h, c (B, H), W_hh (4H, H)."""

    def forward(self, gi, h, c, weight_hh, bias_hh=None):
        xp = get_array_module(gi)
        a = gi + h @ weight_hh.T                                     # (B, 4H)
        if bias_hh is not None:
            a += bias_hh
        i, f, g, o, c_new, tanh_c = lstm_cell_forward(xp, a, c)      # each (B, H)
        # Saved for backward: the gates and tanh(c') (their derivatives come from them),
        # the inputs c and h, and W_hh.
        self.save_for_backward(i, f, g, o, tanh_c, c, h, weight_hh)
        self.has_bias = bias_hh is not None
        return o * tanh_c, c_new

    def backward(self, gh_new, gc_new):
        i, f, g, o, tanh_c, c, h, weight_hh = self.saved
        g_a, gc = lstm_cell_backward(get_array_module(gh_new), gh_new, gc_new, i, f, g, o, tanh_c, c)
        grads = (g_a, g_a @ weight_hh, gc, g_a.T @ h)                # gi, h, c, W_hh
        if self.has_bias:
            grads += (g_a.sum(axis=0),)                              # (4H,)
        return grads


def lstm_step_fused(gi, h, c, weight_hh, bias_hh=None):
    """One fused LSTM step: (h', c'), each (B, H). See the module docstring."""
    inputs = (gi, h, c, weight_hh) if bias_hh is None else (gi, h, c, weight_hh, bias_hh)
    return LSTMStep()(*as_floats(*inputs))
