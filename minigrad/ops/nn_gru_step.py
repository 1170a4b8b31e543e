"""One GRU step as one fused op, its backward derived by hand (Cho et al., 2014,
arXiv:1406.1078; PyTorch's form, the reset gate on W_hn h + b_hn).

Forward, from the input projection gi = x W_ih^T + b_ih (computed for all steps at once):

    gh = h W_hh^T + b_hh                       (B, 3H): [gh_r, gh_z, gh_n]
    r  = sigma(gi_r + gh_r)
    z  = sigma(gi_z + gh_z)
    n  = tanh(gi_n + r (.) gh_n)
    h' = (1 - z) (.) n + z (.) h

Backward, the forward in reverse, with gy = dL/dh':

    gn = gy (.) (1 - z)          gz = gy (.) (h - n)          gh (direct) = gy (.) z
    g_an = gn (.) (1 - n^2)                                   tanh' from its output
    g_ar = g_an (.) gh_n (.) r (1 - r)                        sigma' = s (1 - s)
    g_az = gz (.) z (1 - z)
    g_gi = [g_ar, g_az, g_an]         g_gh = [g_ar, g_az, g_an (.) r]
    gh  += g_gh W_hh;   gW_hh = g_gh^T h;   gb_hh = sum_B g_gh

The composed version (``minigrad.nn.rnn_cell.gru_step_composed``) is the test oracle.
"""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._util import sigmoid_array

__all__ = ["gru_step_fused"]


class GRUStep(Function):
    """(gi, h, W_hh[, b_hh]) -> h'.  gi (B, 3H), h (B, H), W_hh (3H, H), b_hh (3H,)."""

    def forward(self, gi, h, weight_hh, bias_hh=None):
        xp = get_array_module(gi)
        H = h.shape[-1]
        gh = h @ weight_hh.T                                         # (B, 3H)
        if bias_hh is not None:
            gh += bias_hh
        r = sigmoid_array(xp, gi[:, :H] + gh[:, :H])                      # (B, H)
        z = sigmoid_array(xp, gi[:, H:2 * H] + gh[:, H:2 * H])            # (B, H)
        gh_n = gh[:, 2 * H:]                                         # (B, H)
        n = xp.tanh(gi[:, 2 * H:] + r * gh_n)                        # (B, H)
        # Saved for backward: the gates (their derivatives come from them), gh_n, h, W_hh.
        self.save_for_backward(r, z, n, gh_n, h, weight_hh)
        self.has_bias = bias_hh is not None
        return (1.0 - z) * n + z * h                                 # (B, H)

    def backward(self, gy):
        r, z, n, gh_n, h, weight_hh = self.saved
        xp = get_array_module(gy)
        H = h.shape[-1]
        # h' = (1 - z) n + z h
        gn = gy * (1.0 - z)
        gz = gy * (h - n)
        # n = tanh(a_n): dn/da_n = 1 - n^2
        g_an = gn * (1.0 - n * n)
        # a_n = gi_n + r gh_n: d/dr = gh_n; r = sigma(a_r): dr/da_r = r (1 - r)
        g_ar = g_an * gh_n * r * (1.0 - r)
        # z = sigma(a_z): dz/da_z = z (1 - z)
        g_az = gz * z * (1.0 - z)
        g_gi = xp.concatenate([g_ar, g_az, g_an], axis=-1)           # (B, 3H)
        g_gh = xp.concatenate([g_ar, g_az, g_an * r], axis=-1)       # (B, 3H)
        # gh = h W_hh^T + b_hh, and h' depends on h directly through z h
        gh = gy * z + g_gh @ weight_hh                               # (B, H)
        gW = g_gh.T @ h                                              # (3H, H)
        grads = (g_gi, gh, gW)
        if self.has_bias:
            grads += (g_gh.sum(axis=0),)                             # (3H,)
        return grads


def gru_step_fused(gi, h, weight_hh, bias_hh=None):
    """One fused GRU step: h' (B, H). See the module docstring."""
    inputs = (gi, h, weight_hh) if bias_hh is None else (gi, h, weight_hh, bias_hh)
    return GRUStep()(*inputs)
