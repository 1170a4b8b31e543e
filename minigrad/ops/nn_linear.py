"""The affine map of a Linear layer as one op: y = x W^T + b.

Leading axes of x are flattened, so any batch shape is one matrix product
(N = the product of the leading sizes):

    x (N, in),  W (out, in),  b (out,)  ->  y (N, out)

    y  = x W^T + b              the product written straight into y, b added in place

Backward, with gy = dL/dy (N, out):

    dL/dx = gy W                (N, out) @ (out, in)
    dL/dW = gy^T x              (out, N) @ (N, in): already W's layout, no transpose
    dL/db = sum_n gy[n]         (out,)

As one op it makes one array in forward where the composed ``matmul`` of a
transposed weight plus ``add`` makes two (the product, then the sum), and its
backward gives the weight gradient in W's own layout. Its composed oracle is
``linear_composed`` in ``minigrad/nn/functional.py`` (matmul, transpose and add; it
sits there beside ``linear``, the function layers call, because it needs their
shape check), and tests/test_nn_basic.py holds the two equal in value and gradient.
"""
import math

from minigrad.backend import get_array_module
from minigrad.function import Function
from minigrad.ops._matmul import matmul_arrays
from minigrad.ops._util import as_floats

__all__ = ["linear_fused"]


class Linear(Function):
    """(x (..., in), W (out, in)[, b (out,)]) -> y (..., out)."""

    def forward(self, x, weight, bias=None):
        self.lead = x.shape[:-1]
        x2 = x.reshape(math.prod(self.lead), x.shape[-1])               # (N, in)
        y = matmul_arrays(x2, weight.T)                                 # (N, out)
        if bias is not None:
            y += bias
        self.save_for_backward(x2, weight)
        self.has_bias = bias is not None
        return y.reshape(*self.lead, weight.shape[0])                   # (..., out)

    def backward(self, gy):
        x2, weight = self.saved
        xp = get_array_module(gy)
        # A broadcast upstream gradient (the backward of a sum, stride 0) would send
        # the products to NumPy's non-BLAS loop: make it contiguous once.
        gy2 = xp.ascontiguousarray(gy.reshape(x2.shape[0], weight.shape[0]))   # (N, out)
        need_x, need_w = self.needs_input_grad[:2]
        # dL/dW = gy^T x
        gw = matmul_arrays(gy2.T, x2) if need_w else None               # (out, in)
        # x is read no more: let it go before dL/dx is made, so that the two are never
        # held at once (the engine allows it when no second walk needs x; in BERT's and
        # GPT's steps the peak is here, x being the feed-forward's (N, 4D) GELU output)
        self.free_saved()
        del x2
        # dL/dx = gy W
        gx = matmul_arrays(gy2, weight).reshape(*self.lead, weight.shape[1]) if need_x else None  # (..., in)
        if not self.has_bias:
            return gx, gw
        # dL/db = sum over the N rows of gy
        gb = gy2.sum(axis=0) if self.needs_input_grad[2] else None      # (out,)
        return gx, gw, gb


def linear_fused(x, weight, bias=None):
    """y = x W^T + b as one op. x (..., in), W (out, in), b (out,) -> (..., out).
    An integer x takes the weight's dtype (NumPy would give float64). Oracle:
    ``minigrad/nn/functional.py::linear_composed``."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Linear()(*as_floats(*inputs))
