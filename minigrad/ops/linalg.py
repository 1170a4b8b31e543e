"""Matrix multiplication, with NumPy's batch broadcasting and 1-D operands."""
from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._matmul import matmul_arrays
from minigrad.ops._util import float_operands, sum_to

__all__ = ["matmul"]


class MatMul(Function):
    """Y = A @ B: Y[..., i, j] = sum_k A[..., i, k] B[..., k, j].

    Leading (batch) axes broadcast as in NumPy. A 1-D A is a row vector (k,) and
    a 1-D B a column vector (k,); the axis added for it is removed again from Y.
    """

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return matmul_arrays(a, b)

    def backward(self, gy):
        a, b = self.saved
        xp = get_array_module(gy)
        # A gradient may arrive as a broadcast view (the backward of a sum has stride 0);
        # BLAS cannot read those, and NumPy's fallback loop is ~10x slower: copy it once.
        gy = xp.ascontiguousarray(gy)
        # Work with 2-D (or batched) operands: a vector becomes a 1-row / 1-column matrix.
        a2 = a[None, :] if a.ndim == 1 else a                   # (..., n, k)
        b2 = b[:, None] if b.ndim == 1 else b                   # (..., k, m)
        gy2 = gy[..., None] if b.ndim == 1 else gy              # (..., n, 1)
        gy2 = gy2[..., None, :] if a.ndim == 1 else gy2         # (..., 1, m)
        ga = gb = None
        if self.needs_input_grad[0]:
            # dL/dA = dL/dY B^T
            ga = matmul_arrays(gy2, xp.swapaxes(b2, -1, -2))    # (..., n, k)
            ga = sum_to(ga, a2.shape).reshape(a.shape)          # undo batch broadcasting
        if self.needs_input_grad[1]:
            # dL/dB = A^T dL/dY
            gb = matmul_arrays(xp.swapaxes(a2, -1, -2), gy2)    # (..., k, m)
            gb = sum_to(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """a @ b with NumPy's rules (batch broadcasting, 1-D operands)."""
    a, b = float_operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: expected operands of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
            f"{k_a} (last dim of a) != {k_b} ({'dim 0' if b.ndim == 1 else 'second-to-last dim'} of b)"
        )
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    for m, n in zip(batch_a[::-1], batch_b[::-1]):
        if m != n and 1 not in (m, n):
            raise ValueError(
                f"matmul: batch dimensions of shapes {a.shape} and {b.shape} do not broadcast"
            )
    return MatMul()(a, b)
