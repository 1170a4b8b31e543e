"""A whole LSTM layer direction as one fused op: the time loop runs inside forward
and backward, so the recurrent weight's gradient is one matrix product over all
T * B rows instead of T small ones (the per-step form is ``nn_lstm_step.py``).

Forward, for t = 0 .. T-1 (T-1 .. 0 when ``reverse``), from gi = x W_ih^T + b_ih:

    (h_new, c_new) = LSTM step (gi[t], h, c)            the equations of nn_lstm_step.py
    h, c   = where(m_t, h_new, h), where(m_t, c_new, c)  a padded step keeps the state
    out[t] = where(m_t, h_new, 0)                        and outputs zero

Backward, the loop in reverse, with gh, gc the gradients reaching the running state:

    gh_new = m_t (gout[t] + gh);   gc_new = m_t gc        (gh, gc (1 - m_t) pass by)
    g_a[t] = the step's gate gradient (nn_lstm_step.py) from (gh_new, gc_new)
    gh = g_a[t] W_hh + (1 - m_t) gh;   gc = gc_total f + (1 - m_t) gc
    gW_hh = sum_t g_a[t]^T h_prev[t]  = G_a^T H_prev  (one product, (4H, T*B) @ (T*B, H))
    gb_hh = sum_{t,b} g_a[t];          g_gi = G_a

The per-step ops, run in a Python loop, are the test oracle (``minigrad.nn.rnn``).
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, times_transposed
from minigrad.ops.nn_lstm_step import lstm_cell_backward, lstm_cell_forward

__all__ = ["lstm_sequence_fused"]


class LSTMSequence(Function):
    """(gi, h0, c0, W_hh[, b_hh]) -> (out, h_T, c_T).  gi (T, B, 4H); h0, c0 (B, H);
    out (T, B, H). ``mask`` (T, B, 1) boolean or None; ``reverse`` runs t backwards."""

    def __init__(self, mask, reverse):
        self.mask, self.reverse = mask, reverse

    def forward(self, gi, h0, c0, weight_hh, bias_hh=None):
        xp = get_array_module(gi)
        T, B, _ = gi.shape
        H = h0.shape[-1]
        gates = xp.empty((T, B, 4 * H), dtype=gi.dtype)     # i, f, g, o after their activations
        tanh_c = xp.empty((T, B, H), dtype=gi.dtype)
        h_prev = xp.empty((T, B, H), dtype=gi.dtype)        # the state each step read
        c_prev = xp.empty((T, B, H), dtype=gi.dtype)
        out = xp.empty((T, B, H), dtype=gi.dtype)
        h, c = h0, c0
        for t in (range(T - 1, -1, -1) if self.reverse else range(T)):
            h_prev[t], c_prev[t] = h, c
            a = gi[t] + times_transposed(weight_hh, h)                     # (B, 4H): gi + h W_hh^T
            if bias_hh is not None:
                a += bias_hh
            i, f, g, o, c_new, tanh_c[t] = lstm_cell_forward(xp, a, c)      # each (B, H)
            h_new = o * tanh_c[t]
            gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:] = i, f, g, o
            if self.mask is None:
                h, c, out[t] = h_new, c_new, h_new
            else:
                m = self.mask[t]                                             # (B, 1)
                h, c = xp.where(m, h_new, h), xp.where(m, c_new, c)
                out[t] = xp.where(m, h_new, 0.0)
        self.save_for_backward(gates, tanh_c, h_prev, c_prev, weight_hh)
        self.has_bias = bias_hh is not None
        return out, h, c

    def backward(self, gout, gh_T, gc_T):
        gates, tanh_c, h_prev, c_prev, weight_hh = self.saved
        xp = get_array_module(gout)
        T, B, H = gout.shape
        g_a = xp.empty((T, B, 4 * H), dtype=gout.dtype)
        weight_hh_T = xp.ascontiguousarray(weight_hh.T)                      # (H, 4H)
        gh, gc = gh_T, gc_T
        for t in (range(T) if self.reverse else range(T - 1, -1, -1)):
            i, f = gates[t, :, :H], gates[t, :, H:2 * H]
            g, o = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
            if self.mask is None:
                gh_new, gc_new = gout[t] + gh, gc
            else:
                m = self.mask[t]
                gh_new = xp.where(m, gout[t] + gh, 0.0)
                gc_new = xp.where(m, gc, 0.0)
            # the step's backward (nn_lstm_step.py)
            g_a[t], gc_from_step = lstm_cell_backward(xp, gh_new, gc_new, i, f, g, o, tanh_c[t], c_prev[t])
            gh_from_step = times_transposed(weight_hh_T, g_a[t])           # (B, H) = g_a W_hh
            if self.mask is None:
                gh, gc = gh_from_step, gc_from_step
            else:
                gh = xp.where(m, gh_from_step, gh)                            # padded: passes by
                gc = xp.where(m, gc_from_step, gc)
        # dL/dW_hh = sum_t g_a[t]^T h_prev[t]: one product over all T * B rows
        gW = g_a.reshape(T * B, 4 * H).T @ h_prev.reshape(T * B, H)          # (4H, H)
        grads = (g_a, gh, gc, gW)
        if self.has_bias:
            grads += (g_a.sum(axis=(0, 1)),)                                 # (4H,)
        return grads


def lstm_sequence_fused(gi, h0, c0, weight_hh, bias_hh=None, mask=None, reverse=False):
    """One LSTM layer direction over T steps: (out (T, B, H), h_T, c_T). ``mask`` is a
    (T, B, 1) boolean backend array (True at real steps) or None."""
    inputs = (gi, h0, c0, weight_hh) if bias_hh is None else (gi, h0, c0, weight_hh, bias_hh)
    return LSTMSequence(mask, reverse)(*as_floats(*inputs))
