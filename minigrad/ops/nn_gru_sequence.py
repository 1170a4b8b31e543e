"""A whole GRU layer direction as one fused op: the time loop runs inside forward
and backward, so the recurrent weight's gradient is one matrix product over all
T * B rows instead of T small ones (the per-step form is ``nn_gru_step.py``).

Forward, for t = 0 .. T-1 (T-1 .. 0 when ``reverse``), from the input projection
x_proj = x W_ih^T + b_ih (g_<name> is always dL/d<name>):

    h_proj = h W_hh^T + b_hh                           (B, 3H)
    h_new  = GRU step (x_proj[t], h_proj, h)           the equations of nn_gru_step.py
    h      = where(m_t, h_new, h)                      a padded step keeps the state
    out[t] = where(m_t, h_new, 0)                      and outputs zero

Backward, the loop in reverse, with g_h the gradient reaching the running state h:

    gy      = m_t (g_out[t] + g_h)                     (g_h (1 - m_t) passes by)
    g_x_proj[t], g_h_proj[t] = the step's projection gradients (nn_gru_step.py) from gy
    g_h     = gy z_t + g_h_proj[t] W_hh + (1 - m_t) g_h
    g_W_hh  = sum_t g_h_proj[t]^T h_prev[t] = G_h_proj^T H_prev  (one product,
              (3H, T*B) @ (T*B, H))
    g_b_hh  = sum_{t,b} g_h_proj[t]

Shapes: x_proj (T, B, 3H); h0 (B, H); W_hh (3H, H); b_hh (3H,); mask (T, B, 1) boolean,
True at real steps, or None (every step real); out (T, B, H); h_T (B, H).

The per-step ops, run in a Python loop, are the test oracle: ``_RNNBase._step_loop``
in minigrad/nn/rnn.py (a GRU's direction, one step op per time step);
tests/test_nn_rnn_steps.py holds the two equal.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, times_transposed, transposed_copy
from minigrad.ops.nn_gru_step import gru_cell_backward, gru_cell_forward

__all__ = ["gru_sequence_fused"]


class GRUSequence(Function):
    """(x_proj, h0, W_hh[, b_hh]) -> (out, h_T).  x_proj (T, B, 3H); h0 (B, H); out (T, B, H).
    ``mask`` (T, B, 1) boolean or None; ``reverse`` runs t backwards."""

    def __init__(self, mask, reverse):
        self.mask, self.reverse = mask, reverse

    def forward(self, x_proj, h0, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        T, B, _ = x_proj.shape
        H = h0.shape[-1]
        gates = xp.empty((T, B, 3 * H), dtype=x_proj.dtype)  # r, z, n after their activations
        h_proj_n = xp.empty((T, B, H), dtype=x_proj.dtype)  # h W_hn^T + b_hn, inside n's tanh
        h_prev = xp.empty((T, B, H), dtype=x_proj.dtype)    # the state each step read
        out = xp.empty((T, B, H), dtype=x_proj.dtype)
        h = h0
        for t in (range(T - 1, -1, -1) if self.reverse else range(T)):
            h_prev[t] = h
            # h_proj = h W_hh^T (+ b_hh)                                     (B, 3H)
            # h W_hh^T as (W_hh h^T)^T: BLAS runs the long side first faster (times_transposed)
            h_proj = xp.ascontiguousarray(times_transposed(weight_hh, h))
            if bias_hh is not None:
                h_proj += bias_hh
            h_proj_n[t] = h_proj[:, 2 * H:]                                  # (B, H)
            h_new = gru_cell_forward(xp, x_proj[t], h_proj, h, gates[t])     # (B, H)
            if self.mask is None:
                h, out[t] = h_new, h_new
            else:
                m = self.mask[t]                                             # (B, 1)
                h = xp.where(m, h_new, h)
                out[t] = xp.where(m, h_new, 0.0)
        # Saved for backward: the gates (their derivatives come from them), h_proj_n,
        # the state each step read, and W_hh.
        self.save_for_backward(gates, h_proj_n, h_prev, weight_hh)
        self.has_bias = bias_hh is not None
        return out, h

    def backward(self, g_out, g_h_T):
        gates, h_proj_n, h_prev, weight_hh = self.saved
        xp = get_array_module(g_out)
        T, B, H = g_out.shape
        g_x_proj = xp.empty((T, B, 3 * H), dtype=g_out.dtype)
        g_h_proj = xp.empty((T, B, 3 * H), dtype=g_out.dtype)
        weight_hh_T = transposed_copy(weight_hh)                             # (H, 3H)
        g_h = g_h_T
        for t in (range(T) if self.reverse else range(T - 1, -1, -1)):
            if self.mask is None:
                gy = g_out[t] + g_h                                          # (B, H)
            else:
                m = self.mask[t]                                             # (B, 1)
                gy = xp.where(m, g_out[t] + g_h, 0.0)                        # (B, H)
            # the step's backward (nn_gru_step.py)
            g_h_step = gru_cell_backward(xp, gy, gates[t], h_proj_n[t], h_prev[t], g_x_proj[t], g_h_proj[t])
            # g_h_step += g_h_proj W_hh                                        (B, H)
            # as (W_hh^T g_h_proj^T)^T: BLAS runs the long side first faster (times_transposed)
            g_h_step += times_transposed(weight_hh_T, g_h_proj[t])
            if self.mask is None:
                g_h = g_h_step
            else:
                g_h = xp.where(m, g_h_step, g_h)                             # padded: passes by
        # dL/dW_hh = sum_t g_h_proj[t]^T h_prev[t]: one product over all T * B rows
        g_W_hh = g_h_proj.reshape(T * B, 3 * H).T @ h_prev.reshape(T * B, H)  # (3H, H)
        grads = (g_x_proj, g_h, g_W_hh)
        if self.has_bias:
            grads += (g_h_proj.sum(axis=(0, 1)),)                            # (3H,)
        return grads


def gru_sequence_fused(x_proj, h0, weight_hh, bias_hh=None, mask=None, reverse=False):
    """One GRU layer direction over T steps: (out (T, B, H), h_T (B, H)). ``mask`` is a
    (T, B, 1) boolean backend array (True at real steps) or None."""
    inputs = (x_proj, h0, weight_hh) if bias_hh is None else (x_proj, h0, weight_hh, bias_hh)
    return GRUSequence(mask, reverse)(*as_floats(*inputs))
