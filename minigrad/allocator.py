"""Keep freed CPU memory for reuse: glibc ``malloc`` tuned for a training loop.

A training step makes and frees the same large arrays every step (activations,
gradients, temporaries of a few hundred KB to a few MB). By default glibc's
``malloc`` serves a block that large with a fresh ``mmap`` and gives it back to the
kernel with ``munmap`` when it is freed, and it trims the top of its heap when
much is free there. The next step then asks the kernel again, and every page of
the new block is a page fault, zeroed by the kernel on first touch. Measured on
the Transformer workload W1 of ``benchmarks/train_step.py``: ~30,000 minor page
faults a step by default, ~1 with the settings below.

``reuse_freed_memory()`` sets, with ``mallopt``:

    M_MMAP_THRESHOLD = 32 MiB    blocks below it come from the heap, not mmap
                                  (glibc's largest allowed value on 64-bit)
    M_TRIM_THRESHOLD = 1 GiB     free memory at the heap's top is kept, not trimmed

so freed blocks are reused by the next step instead of being returned and
faulted in again: a caching allocator, as PyTorch uses on the GPU. The price is
that the process keeps its peak memory until it ends. The environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do the same for a
whole process from its start.

It applies to glibc (Linux) only; elsewhere it does nothing and says so. NumPy
and PyTorch (CPU) both allocate through ``malloc``, so in one process both get
the same allocator.
"""
import ctypes
import ctypes.util

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1            # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20       # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 2**30


def reuse_freed_memory():
    """Tune glibc malloc to keep freed blocks (see the module docstring).

    Returns True when both settings were applied, False where there is no glibc
    ``mallopt`` (macOS, Windows, musl) or it refused them.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version            # glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 when it refuses a value
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
