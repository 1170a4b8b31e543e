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

Memory: the states h and c of every step live in two (T + 1, B, H) buffers, the
initial one included, so the state each step read (backward needs it) is a view of
the buffer, not a copy; without a mask the outputs are the states, a view too. The
gates of every step are computed in place in one (T, B, 4H) buffer that backward
keeps.

The per-step ops, run in a Python loop, are the test oracle: ``_RNNBase._step_loop``
in minigrad/nn/rnn.py (an LSTM's direction, one step op per time step);
tests/test_nn_rnn_steps.py holds the two equal.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, times_transposed, transposed_copy
from minigrad.ops.nn_lstm_step import gate_constants, lstm_cell_backward, lstm_cell_forward

__all__ = ["lstm_sequence_fused"]


class LSTMSequence(Function):
    """(x_proj, h0, c0, W_hh[, b_hh]) -> (out, h_T, c_T).  x_proj (T, B, 4H); h0, c0 (B, H);
    out (T, B, H). ``mask`` (T, B, 1) boolean or None; ``reverse`` runs t backwards."""

    def __init__(self, mask, reverse):
        self.mask, self.reverse = mask, reverse

    def steps(self, T):
        """(t, the states' index before step t, after it), in the order the steps run:
        the buffers hold the initial state at 0 (T when ``reverse``)."""
        if self.reverse:
            return [(t, t + 1, t) for t in range(T - 1, -1, -1)]
        return [(t, t, t + 1) for t in range(T)]

    def forward(self, x_proj, h0, c0, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        T, B, _ = x_proj.shape
        H = h0.shape[-1]
        dtype = x_proj.dtype
        gates = xp.empty((T, B, 4 * H), dtype=dtype)         # a, then i, f, g, o in place
        tanh_c = xp.empty((T, B, H), dtype=dtype)
        hs = xp.empty((T + 1, B, H), dtype=dtype)            # the states, the initial one too
        cs = xp.empty((T + 1, B, H), dtype=dtype)
        out = None if self.mask is None else xp.empty((T, B, H), dtype=dtype)
        h_new = None if self.mask is None else xp.empty((B, H), dtype=dtype)
        c_new = None if self.mask is None else xp.empty((B, H), dtype=dtype)
        constants = gate_constants(xp, dtype)
        first = T if self.reverse else 0
        hs[first], cs[first] = h0, c0
        for t, before, after in self.steps(T):
            # a = x_proj[t] + h W_hh^T (+ b_hh)                              (B, 4H)
            # h W_hh^T as (W_hh h^T)^T: BLAS runs the long side first faster (times_transposed)
            xp.add(x_proj[t], times_transposed(weight_hh, hs[before]), out=gates[t])
            if bias_hh is not None:
                gates[t] += bias_hh
            if self.mask is None:
                lstm_cell_forward(xp, gates[t], cs[before], constants, cs[after], tanh_c[t], hs[after])
            else:
                lstm_cell_forward(xp, gates[t], cs[before], constants, c_new, tanh_c[t], h_new)
                m = self.mask[t]                                             # (B, 1)
                hs[after] = xp.where(m, h_new, hs[before])
                cs[after] = xp.where(m, c_new, cs[before])
                out[t] = xp.where(m, h_new, 0.0)
        # Saved for backward: the gates and tanh(c) (their derivatives come from them),
        # both state buffers, W_hh.
        self.save_for_backward(gates, tanh_c, hs, cs, weight_hh, constants)
        self.has_bias = bias_hh is not None
        last = 0 if self.reverse else T
        if self.mask is None:
            out = hs[:T] if self.reverse else hs[1:]                         # (T, B, H), a view
        return out, hs[last], cs[last]

    def backward(self, g_out, g_h_T, g_c_T):
        gates, tanh_c, hs, cs, weight_hh, constants = self.saved
        xp = get_array_module(g_out)
        T, B, H = g_out.shape
        g_a = xp.empty((T, B, 4 * H), dtype=g_out.dtype)
        weight_hh_T = transposed_copy(weight_hh)                             # (H, 4H)
        g_h, g_c = g_h_T, g_c_T
        for t, before, _ in reversed(self.steps(T)):
            if self.mask is None:
                g_h_new, g_c_new = g_out[t] + g_h, g_c
            else:
                m = self.mask[t]
                g_h_new = xp.where(m, g_out[t] + g_h, 0.0)
                g_c_new = xp.where(m, g_c, 0.0)
            # the step's backward (nn_lstm_step.py): g_a[t], and g_c_step = g_c' f
            g_c_step = lstm_cell_backward(xp, g_h_new, g_c_new, gates[t], tanh_c[t], cs[before],
                                          constants, g_a[t])
            # g_h_step = g_a W_hh                                              (B, H)
            # as (W_hh^T g_a^T)^T: BLAS runs the long side first faster (times_transposed)
            g_h_step = times_transposed(weight_hh_T, g_a[t])
            if self.mask is None:
                g_h, g_c = g_h_step, g_c_step
            else:
                g_h = xp.where(m, g_h_step, g_h)                              # padded: passes by
                g_c = xp.where(m, g_c_step, g_c)
        # dL/dW_hh = sum_t g_a[t]^T h_prev[t]: one product over all T * B rows
        h_prev = hs[1:] if self.reverse else hs[:T]                          # (T, B, H), a view
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
