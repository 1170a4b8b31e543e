"""One GRU step as one fused op, its backward derived by hand (Cho et al., 2014,
arXiv:1406.1078; PyTorch's form, the reset gate on W_hn h + b_hn).

Forward, from the input projection gi = x W_ih^T + b_ih (computed for all steps at once):

    gh = h W_hh^T + b_hh                       (B, 3H): [gh_r, gh_z, gh_n]
    r  = sigma(gi_r + gh_r)
    z  = sigma(gi_z + gh_z)
    n  = tanh(gi_n + r (.) gh_n)
    h' = (1 - z) (.) n + z (.) h  =  n + z (.) (h - n)

Backward, the forward in reverse, with gy = dL/dh' and g_h = dL/dh:

    gn = gy (.) (1 - z)          gz = gy (.) (h - n)          g_h (direct) = gy (.) z
    g_an = gn (.) (1 - n^2)                                   tanh' from its output
    g_ar = g_an (.) gh_n (.) r (1 - r)                        sigma' = s (1 - s)
    g_az = gz (.) z (1 - z)
    g_gi = [g_ar, g_az, g_an]         g_gh = [g_ar, g_az, g_an (.) r]
    g_h += g_gh W_hh;   gW_hh = g_gh^T h;   gb_hh = sum_B g_gh

``gru_cell_forward`` and ``gru_cell_backward`` are that array math, shared with the
whole-sequence op (``nn_gru_sequence.py``); they write into arrays the caller gives,
so the sequence op fills its (T, B, 3H) buffers in place.

The composed version (``minigrad.nn.rnn_cell.gru_step_composed``) is the test oracle.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import as_floats, sigmoid_array

__all__ = ["gru_step_fused", "gru_cell_forward", "gru_cell_backward"]


def gru_cell_forward(xp, gi, gh, h, gates):
    """The new state h' (B, H) from the projections gi and gh (B, 3H) and the state h
    (B, H); writes the gates [r, z, n] into ``gates`` (B, 3H) for the backward."""
    H = h.shape[-1]
    gates[:, :2 * H] = sigmoid_array(xp, gi[:, :2 * H] + gh[:, :2 * H])   # r, z: one sigmoid
    r, z = gates[:, :H], gates[:, H:2 * H]                                # each (B, H)
    gates[:, 2 * H:] = xp.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])         # n
    n = gates[:, 2 * H:]                                                  # (B, H)
    return n + z * (h - n)                                                # (B, H)


def gru_cell_backward(xp, gy, gates, gh_n, h, g_gi, g_gh):
    """From gy = dL/dh' (B, H): writes the gradients of the projections gi and gh into
    ``g_gi`` and ``g_gh`` (each (B, 3H)) and returns the direct part of dL/dh, gy z
    (B, H); the part through gh is g_gh W_hh (the module docstring's equations)."""
    H = h.shape[-1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]           # each (B, H)
    # h' = (1 - z) n + z h
    gn = gy * (1.0 - z)
    gz = gy * (h - n)
    # n = tanh(a_n): dn/da_n = 1 - n^2
    g_gi[:, 2 * H:] = gn * (1.0 - n * n)                                  # g_an
    g_an = g_gi[:, 2 * H:]                                                # (B, H), a view
    # a_n = gi_n + r gh_n: d/dr = gh_n; r = sigma(a_r): dr/da_r = r (1 - r)
    g_gi[:, :H] = g_an * gh_n * r * (1.0 - r)                             # g_ar
    # z = sigma(a_z): dz/da_z = z (1 - z)
    g_gi[:, H:2 * H] = gz * z * (1.0 - z)                                 # g_az
    # gh enters r and z as gi does, and n through r gh_n
    g_gh[:, :2 * H] = g_gi[:, :2 * H]
    xp.multiply(g_an, r, out=g_gh[:, 2 * H:])                             # g_an r
    return gy * z


class GRUStep(Function):
    """(gi, h, W_hh[, b_hh]) -> h'.  gi (B, 3H), h (B, H), W_hh (3H, H), b_hh (3H,)."""

    def forward(self, gi, h, weight_hh, bias_hh=None):
        xp = get_array_module(gi)
        H = h.shape[-1]
        gh = h @ weight_hh.T                                         # (B, 3H)
        if bias_hh is not None:
            gh += bias_hh
        gates = xp.empty_like(gi)                                    # (B, 3H): r, z, n
        h_new = gru_cell_forward(xp, gi, gh, h, gates)               # (B, H)
        # Saved for backward: the gates (their derivatives come from them), gh_n, h, W_hh.
        self.save_for_backward(gates, gh[:, 2 * H:], h, weight_hh)
        self.has_bias = bias_hh is not None
        return h_new

    def backward(self, gy):
        gates, gh_n, h, weight_hh = self.saved
        xp = get_array_module(gy)
        g_gi, g_gh = xp.empty_like(gates), xp.empty_like(gates)      # each (B, 3H)
        g_h = gru_cell_backward(xp, gy, gates, gh_n, h, g_gi, g_gh)  # (B, H), the direct part
        # gh = h W_hh^T + b_hh
        g_h += g_gh @ weight_hh                                      # (B, H)
        gW = g_gh.T @ h                                              # (3H, H)
        grads = (g_gi, g_h, gW)
        if self.has_bias:
            grads += (g_gh.sum(axis=0),)                             # (3H,)
        return grads


def gru_step_fused(gi, h, weight_hh, bias_hh=None):
    """One fused GRU step: h' (B, H). See the module docstring."""
    inputs = (gi, h, weight_hh) if bias_hh is None else (gi, h, weight_hh, bias_hh)
    return GRUStep()(*as_floats(*inputs))
