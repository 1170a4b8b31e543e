"""One GRU step as one fused op, its backward derived by hand (Cho et al., 2014,
arXiv:1406.1078; PyTorch's form, the reset gate on W_hn h + b_hn).

Names: x_proj = x W_ih^T + b_ih is the input projection (computed for all steps at
once), h_proj = h W_hh^T + b_hh the hidden one; g_<name> is always the gradient
dL/d<name>, and gy = dL/dh' the gradient arriving from above.

Forward:

    h_proj = h W_hh^T + b_hh                   (B, 3H): [h_proj_r, h_proj_z, h_proj_n]
    r  = sigma(x_proj_r + h_proj_r)
    z  = sigma(x_proj_z + h_proj_z)
    n  = tanh(x_proj_n + r (.) h_proj_n)
    h' = (1 - z) (.) n + z (.) h  =  n + z (.) (h - n)

Backward, the forward in reverse, with gy = dL/dh' and g_h = dL/dh:

    g_n = gy (.) (1 - z)         g_z = gy (.) (h - n)         g_h (direct) = gy (.) z
    g_an = g_n (.) (1 - n^2)                                  tanh' from its output
    g_ar = g_an (.) h_proj_n (.) r (1 - r)                    sigma' = s (1 - s)
    g_az = g_z (.) z (1 - z)
    g_x_proj = [g_ar, g_az, g_an]      g_h_proj = [g_ar, g_az, g_an (.) r]
    g_h += g_h_proj W_hh;   g_W_hh = g_h_proj^T h;   g_b_hh = sum_B g_h_proj

``gru_cell_forward`` and ``gru_cell_backward`` are that array math, shared with the
whole-sequence op (``nn_gru_sequence.py``); they write into arrays the caller gives,
so the sequence op fills its (T, B, 3H) buffers in place.

The composed version (``minigrad.nn.rnn_cell.gru_step_composed``) is the test oracle.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, sigmoid_array

__all__ = ["gru_step_fused", "gru_cell_forward", "gru_cell_backward"]


def gru_cell_forward(xp, x_proj, h_proj, h, gates):
    """The new state h' (B, H) from the projections x_proj and h_proj (B, 3H) and the
    state h (B, H); writes the gates [r, z, n] into ``gates`` (B, 3H) for the backward."""
    H = h.shape[-1]
    gates[:, :2 * H] = sigmoid_array(xp, x_proj[:, :2 * H] + h_proj[:, :2 * H])   # r, z: one sigmoid
    r, z = gates[:, :H], gates[:, H:2 * H]                                # each (B, H)
    gates[:, 2 * H:] = xp.tanh(x_proj[:, 2 * H:] + r * h_proj[:, 2 * H:])  # n
    n = gates[:, 2 * H:]                                                  # (B, H)
    return n + z * (h - n)                                                # (B, H)


def gru_cell_backward(xp, gy, gates, h_proj_n, h, g_x_proj, g_h_proj):
    """From gy = dL/dh' (B, H): writes the gradients of the projections x_proj and
    h_proj into ``g_x_proj`` and ``g_h_proj`` (each (B, 3H)) and returns the direct
    part of dL/dh, gy z (B, H); the part through h_proj is g_h_proj W_hh (the module
    docstring's equations)."""
    H = h.shape[-1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]           # each (B, H)
    # h' = (1 - z) n + z h
    g_n = gy * (1.0 - z)
    g_z = gy * (h - n)
    # n = tanh(a_n): dn/da_n = 1 - n^2
    g_x_proj[:, 2 * H:] = g_n * (1.0 - n * n)                             # g_an
    g_an = g_x_proj[:, 2 * H:]                                            # (B, H), a view
    # a_n = x_proj_n + r h_proj_n: d/dr = h_proj_n; r = sigma(a_r): dr/da_r = r (1 - r)
    g_x_proj[:, :H] = g_an * h_proj_n * r * (1.0 - r)                     # g_ar
    # z = sigma(a_z): dz/da_z = z (1 - z)
    g_x_proj[:, H:2 * H] = g_z * z * (1.0 - z)                            # g_az
    # h_proj enters r and z as x_proj does, and n through r h_proj_n
    g_h_proj[:, :2 * H] = g_x_proj[:, :2 * H]
    xp.multiply(g_an, r, out=g_h_proj[:, 2 * H:])                         # g_an r
    return gy * z


class GRUStep(Function):
    """(x_proj, h, W_hh[, b_hh]) -> h'.  x_proj (B, 3H), h (B, H), W_hh (3H, H), b_hh (3H,)."""

    def forward(self, x_proj, h, weight_hh, bias_hh=None):
        xp = get_array_module(x_proj)
        H = h.shape[-1]
        h_proj = h @ weight_hh.T                                     # (B, 3H)
        if bias_hh is not None:
            h_proj += bias_hh
        gates = xp.empty_like(x_proj)                                # (B, 3H): r, z, n
        h_new = gru_cell_forward(xp, x_proj, h_proj, h, gates)       # (B, H)
        # Saved for backward: the gates (their derivatives come from them), h_proj_n, h, W_hh.
        # h_proj_n as a copy: a view would keep all of h_proj (B, 3H) until backward, 2H
        # a step more (W2's decoder: 2.1 MB over its 32 steps, at the forward's peak).
        h_proj_n = xp.ascontiguousarray(h_proj[:, 2 * H:])           # (B, H)
        self.save_for_backward(gates, h_proj_n, h, weight_hh)
        self.has_bias = bias_hh is not None
        return h_new

    def backward(self, gy):
        gates, h_proj_n, h, weight_hh = self.saved
        xp = get_array_module(gy)
        g_x_proj, g_h_proj = xp.empty_like(gates), xp.empty_like(gates)   # each (B, 3H)
        g_h = gru_cell_backward(xp, gy, gates, h_proj_n, h, g_x_proj, g_h_proj)  # (B, H), the direct part
        # h_proj = h W_hh^T + b_hh
        g_h += g_h_proj @ weight_hh                                  # (B, H)
        g_W_hh = g_h_proj.T @ h                                      # (3H, H)
        grads = (g_x_proj, g_h, g_W_hh)
        if self.has_bias:
            grads += (g_h_proj.sum(axis=0),)                         # (3H,)
        return grads


def gru_step_fused(x_proj, h, weight_hh, bias_hh=None):
    """One fused GRU step: h' (B, H). See the module docstring."""
    inputs = (x_proj, h, weight_hh) if bias_hh is None else (x_proj, h, weight_hh, bias_hh)
    return GRUStep()(*as_floats(*inputs))
