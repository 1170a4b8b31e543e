"""The product of two backend arrays, ``a @ b``, and where a float16 one is computed.

    matmul_arrays(a, b)      a @ b, NumPy's rules (batch broadcasting, 1-D operands)
    matmul_into(out, a, b)   out[...] = a @ b, into a given array (a block of a larger one)

float16 operands (mixed precision, ``minigrad.amp``) on a GPU go to cuBLAS as they are:
its half-precision GEMM reads float16, accumulates the products in float32 and rounds
the result to float16 once (the tensor cores' arithmetic). NumPy has no half-precision
BLAS: its own float16 loop runs ~40x slower than float32's (2000 x 128 @ 128 x 384:
300 ms against 8). On the host the same numbers come from float32 BLAS instead: every
float16 value is exact in float32, the sums run in float32, and the result is rounded
to float16 once, as on the GPU (up to the order of the sums). This is the one place
that knows the difference.
"""
from minigrad.backend import backend_of

__all__ = ["matmul_arrays", "matmul_into"]


def _float16_on_host(a):
    """Whether ``a`` is float16 on a backend without half-precision BLAS (the host)."""
    return a.dtype.itemsize == 2 and a.dtype.kind == "f" and backend_of(a).name != "cupy"


def matmul_arrays(a, b):
    """a @ b; float16 on the host through float32 BLAS (see the module docstring)."""
    if _float16_on_host(a):
        return (a.astype("float32") @ b.astype("float32")).astype("float16")
    return a @ b


def matmul_into(out, a, b):
    """out[...] = a @ b, written into ``out`` (a block of a larger array, or a strided
    view of one); float16 on the host through float32 BLAS, rounded once on the way in."""
    if _float16_on_host(a):
        out[...] = a.astype("float32") @ b.astype("float32")
    else:
        backend_of(a).xp.matmul(a, b, out=out)
