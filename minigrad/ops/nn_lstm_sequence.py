"""A whole LSTM layer direction as one fused op: the time loop runs inside forward
and backward, so the recurrent weight's gradient is one matrix product over all
T * B rows instead of T small ones (the per-step form is ``nn_lstm_step.py``).

Forward, for t = 0 .. T-1 (T-1 .. 0 when ``reverse``), from the input projection
x_proj = x W_ih^T + b_ih (g_<name> is always dL/d<name>):

    (h_new, c_new) = LSTM step (x_proj[t], h, c)        the equations of nn_lstm_step.py
    h, c   = where(m_t, h_new, h), where(m_t, c_new, c)  a padded step keeps the state
    out[t] = where(m_t, h_new, 0)                        and outputs zero

Backward, the loop in reverse, with g_h, g_c the gradients reaching the running state:

    g_h_new = m_t (g_out[t] + g_h);   g_c_new = m_t g_c     (g_h, g_c (1 - m_t) pass by)
    g_a[t], g_c_step = the step's gradients (nn_lstm_step.py) from (g_h_new, g_c_new);
                       g_c_step = g_c' f is the cell state's share (g_c' the total
                       gradient reaching c', nn_lstm_step.py)
    g_h = g_a[t] W_hh + (1 - m_t) g_h;   g_c = g_c_step + (1 - m_t) g_c
    g_W_hh = sum_t g_a[t]^T h_prev[t] = G_a^T H_prev  (one product, (4H, T*B) @ (T*B, H))
    g_b_hh = sum_{t,b} g_a[t];           g_x_proj = G_a

The per-step ops, run in a Python loop, are the test oracle (``minigrad.nn.rnn``).
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, times_transposed
from minigrad.ops.nn_lstm_step import lstm_cell_backward, lstm_cell_forward

__all__ = ["lstm_sequence_fused"]


class LSTMSequence(Function):
    """(x_proj, h0, c0, W_hh[, b_hh]) -> (out, h_T, c_T).  x_proj (T, B, 4H); h0, c0 (B, H);
    out (T, B, H). ``mask`` (T, B, 1) boolean or None; ``reverse`` runs t backwards."""

    def __init__(self, mask, reverse):
        self.mask, self.reverse = mask, reverse

    def forward(self, x_proj, h0, c0, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        T, B, _ = x_proj.shape
        H = h0.shape[-1]
        gates = xp.empty((T, B, 4 * H), dtype=x_proj.dtype)     # i, f, g, o after their activations
        tanh_c = xp.empty((T, B, H), dtype=x_proj.dtype)
        h_prev = xp.empty((T, B, H), dtype=x_proj.dtype)        # the state each step read
        c_prev = xp.empty((T, B, H), dtype=x_proj.dtype)
        out = xp.empty((T, B, H), dtype=x_proj.dtype)
        h, c = h0, c0
        for t in (range(T - 1, -1, -1) if self.reverse else range(T)):
            h_prev[t], c_prev[t] = h, c
            # a = x_proj[t] + h W_hh^T (+ b_hh)                              (B, 4H)
            # h W_hh^T as (W_hh h^T)^T: BLAS runs the long side first faster (times_transposed)
            a = x_proj[t] + times_transposed(weight_hh, h)
            if bias_hh is not None:
                a += bias_hh
            i, f, g, o, c_new, tanh_c[t] = lstm_cell_forward(xp, a, c)      # each (B, H)
            h_new = o * tanh_c[t]
            gates[t, :, :H] = i
            gates[t, :, H:2 * H] = f
            gates[t, :, 2 * H:3 * H] = g
            gates[t, :, 3 * H:] = o
            if self.mask is None:
                h, c, out[t] = h_new, c_new, h_new
            else:
                m = self.mask[t]                                             # (B, 1)
                h, c = xp.where(m, h_new, h), xp.where(m, c_new, c)
                out[t] = xp.where(m, h_new, 0.0)
        self.save_for_backward(gates, tanh_c, h_prev, c_prev, weight_hh)
        self.has_bias = bias_hh is not None
        return out, h, c

    def backward(self, g_out, g_h_T, g_c_T):
        gates, tanh_c, h_prev, c_prev, weight_hh = self.saved
        xp = get_array_module(g_out)
        T, B, H = g_out.shape
        g_a = xp.empty((T, B, 4 * H), dtype=g_out.dtype)
        weight_hh_T = xp.ascontiguousarray(weight_hh.T)                      # (H, 4H)
        g_h, g_c = g_h_T, g_c_T
        for t in (range(T) if self.reverse else range(T - 1, -1, -1)):
            i, f = gates[t, :, :H], gates[t, :, H:2 * H]
            g, o = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
            if self.mask is None:
                g_h_new, g_c_new = g_out[t] + g_h, g_c
            else:
                m = self.mask[t]
                g_h_new = xp.where(m, g_out[t] + g_h, 0.0)
                g_c_new = xp.where(m, g_c, 0.0)
            # the step's backward (nn_lstm_step.py)
            g_a[t], g_c_step = lstm_cell_backward(xp, g_h_new, g_c_new, i, f, g, o, tanh_c[t], c_prev[t])
            # g_h_step = g_a W_hh                                              (B, H)
            # as (W_hh^T g_a^T)^T: BLAS runs the long side first faster (times_transposed)
            g_h_step = times_transposed(weight_hh_T, g_a[t])
            if self.mask is None:
                g_h, g_c = g_h_step, g_c_step
            else:
                g_h = xp.where(m, g_h_step, g_h)                              # padded: passes by
                g_c = xp.where(m, g_c_step, g_c)
        # dL/dW_hh = sum_t g_a[t]^T h_prev[t]: one product over all T * B rows
        g_W_hh = g_a.reshape(T * B, 4 * H).T @ h_prev.reshape(T * B, H)      # (4H, H)
        grads = (g_a, g_h, g_c, g_W_hh)
        if self.has_bias:
            grads += (g_a.sum(axis=(0, 1)),)                                 # (4H,)
        return grads


def lstm_sequence_fused(x_proj, h0, c0, weight_hh, bias_hh=None, mask=None, reverse=False):
    """One LSTM layer direction over T steps: (out (T, B, H), h_T, c_T). ``mask`` is a
    (T, B, 1) boolean backend array (True at real steps) or None."""
    inputs = (x_proj, h0, c0, weight_hh) if bias_hh is None else (x_proj, h0, c0, weight_hh, bias_hh)
    return LSTMSequence(mask, reverse)(*as_floats(*inputs))
