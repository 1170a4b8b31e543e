"""Sinusoidal positional encoding (Vaswani et al., 2017, "Attention Is All You Need", §3.5).

    PE(pos, 2i)     = sin(omega_i pos)
    PE(pos, 2i + 1) = cos(omega_i pos),      omega_i = 1 / 10000^(2i / d_model)

Each pair of dimensions is a sinusoid of its own angular frequency omega_i, from 1
down to 1/10000 radians per position (a wavelength 2 pi / omega_i from 2 pi to
10000 * 2 pi positions), so PE(pos + k) is a linear function (a rotation by the
angles omega_i k) of PE(pos) for any fixed offset k: the paper's reason for choosing it.
"""
import math

from minigrad import backend as _backend
from minigrad.nn.dropout import Dropout
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

__all__ = ["sinusoidal_positional_encoding", "PositionalEncoding"]


def sinusoidal_positional_encoding(length, d_model, dtype="float32", backend=None):
    """The table PE of shape (length, d_model) on ``backend`` (the default one if None)."""
    xp = (_backend.backend_by_name(backend) if backend else _backend.current_backend()).xp
    position = xp.arange(length, dtype="float64")[:, None]                       # (L, 1)
    # omega_i = 1 / 10000^(2i / d_model) = exp(-2i ln(10000) / d_model), radians per position
    angular_frequency = xp.exp(xp.arange(0, d_model, 2, dtype="float64")
                               * (-math.log(10000.0) / d_model))                # (ceil(D/2),)
    angle = position * angular_frequency                                         # (L, ceil(D/2))
    pe = xp.zeros((length, d_model), dtype="float64")
    pe[:, 0::2] = xp.sin(angle)                                                  # even dims
    pe[:, 1::2] = xp.cos(angle[:, : d_model // 2])                               # odd dims
    return Tensor(pe.astype(dtype))


class PositionalEncoding(Module):
    """y = dropout(x + PE[start : start + T]).

    >>> import minigrad as mg
    >>> pe = mg.nn.PositionalEncoding(d_model=8, max_len=100)
    >>> pe(mg.zeros(2, 5, 8)).shape
    (2, 5, 8)
    >>> pe(mg.zeros(1, 1, 8)).numpy()[0, 0].tolist()    # position 0: sin 0 = 0, cos 0 = 1
    [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]

    The table is computed once for ``max_len`` positions and kept as a
    non-persistent buffer: it is a fixed function, not learned, so it is not in
    ``state_dict``. Scaling the embeddings by sqrt(d_model) (§3.4) is the model's job.

    Shapes:
        input x: (B, T, D), output: (B, T, D); buffer pe: (max_len, D)
        start: the position of x's first step (> 0 when decoding one step at a time)
    """

    def __init__(self, d_model, max_len=5000, dropout=0.0):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.dropout = Dropout(dropout)
        # Kept in float64 (forward casts it to the input's dtype), so a float64 model
        # gets the exact table, not a float32 rounding of it.
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model, dtype="float64"),
                             persistent=False)

    def forward(self, x, start=0):
        T = x.shape[-2]
        if x.shape[-1] != self.d_model:
            raise ValueError(f"PositionalEncoding: expected input (..., T, {self.d_model}), got {x.shape}")
        if start < 0:
            raise ValueError(f"PositionalEncoding: start must be >= 0, got {start}")
        if start + T > self.max_len:
            raise ValueError(f"PositionalEncoding: positions {start}..{start + T - 1} exceed "
                             f"max_len={self.max_len}; build it with a larger max_len")
        if x.dtype.kind != "f":
            x = x.astype("float32")         # integers: float32, as every float op gives them
        pe = self.pe.data[start:start + T]                                       # (T, D)
        if pe.dtype != x.dtype:
            pe = pe.astype(x.dtype)
        return self.dropout(x + Tensor(pe))                                      # (B, T, D)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"
