"""NumPy's BLAS on this CPU: the matrix-product kernels OpenBLAS chose, and the widest
ones the CPU can run.

Nearly all of a training step's arithmetic is matrix products, and on the CPU NumPy
hands them to its BLAS, OpenBLAS in NumPy's wheels. OpenBLAS ships kernels for many
CPU generations and picks one set when it loads, from a table of CPU models. A CPU
newer than that table gets older kernels: on AMD Zen 5 (family 26), OpenBLAS 0.3.31
runs its "Haswell" kernels, 256-bit AVX2, though the CPU has 512-bit AVX-512 units.
Measured on 2 Zen 5 cores, float32 (2048, 512) @ (512, 2048): 225 GFLOP/s with the
Haswell kernels, 450 with the "SkylakeX" (AVX-512) ones; PyTorch's own LSTM and
attention kernels (oneDNN) use AVX-512 there, so the comparison is only fair with them.

``use_widest_kernels()`` switches OpenBLAS, in this process, to its AVX-512 kernels
when the CPU has AVX-512 and OpenBLAS chose narrower ones, checks one product against
float64 arithmetic, and says what it did. It does what starting the process with
``OPENBLAS_CORETYPE=SkylakeX`` in the environment does (the documented OpenBLAS
setting), for a process that has already imported NumPy, and leaves that variable set,
so that child processes start with the same kernels. Call it at the start, before any
thread runs a product (as ``train.py`` calls ``reuse_freed_memory``). Results change in
their last bits (the kernels sum in another order), as with any BLAS.

It needs Linux (it finds the library in ``/proc/self/maps``) and an OpenBLAS built with
``DYNAMIC_ARCH`` (NumPy's wheels are); elsewhere it changes nothing and says why.
"""
import ctypes
import os
import re

import numpy

__all__ = ["openblas_core", "use_widest_kernels"]

_AVX512_CORE = "SkylakeX"                     # OpenBLAS's AVX-512 F/CD/BW/DQ/VL kernels
_AVX512_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
_AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


def _openblas_library():
    """The OpenBLAS shared library this process has loaded (a ctypes handle), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps.read())))
    except OSError:
        return None
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(library, "gotoblas_dynamic_init"):
            return library
    return None


def _corename(library):
    for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                 "openblas_get_corename64_", "openblas_get_corename"):
        function = getattr(library, name, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return function().decode()
    return None


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core():
    """The name of the kernel set NumPy's OpenBLAS runs ("Haswell", "SkylakeX", ...),
    or None where it cannot be told (another BLAS, not Linux)."""
    library = _openblas_library()
    return None if library is None else _corename(library)


def _products_agree():
    """One float32 product of the BLAS against float64 arithmetic."""
    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((64, 96)).astype(numpy.float32)
    b = rng.standard_normal((96, 80)).astype(numpy.float32)
    exact = a.astype(numpy.float64) @ b.astype(numpy.float64)
    return bool(numpy.allclose(a @ b, exact, rtol=1e-4, atol=1e-4))


def use_widest_kernels():
    """Switch NumPy's OpenBLAS to its AVX-512 kernels where the CPU has AVX-512 and
    OpenBLAS chose narrower ones (see the module docstring).

    Returns a sentence that says what was done: the kernels before and after, or why
    nothing changed. A switch whose check product disagrees is undone.
    """
    library = _openblas_library()
    if library is None:
        return "unchanged: no OpenBLAS with DYNAMIC_ARCH found in this process"
    before = _corename(library)
    if before is None:                       # nothing to switch back to if the check failed
        return "unchanged: OpenBLAS does not say which kernels it runs"
    if before in _AVX512_CORES:
        return f"unchanged: OpenBLAS already runs its {before} kernels"
    flags = _cpu_flags()
    missing = [flag for flag in _AVX512_FLAGS if flag not in flags]
    if missing:
        return f"unchanged: OpenBLAS runs its {before} kernels; the CPU lacks {', '.join(missing)}"
    _reload_kernels(library, _AVX512_CORE)
    if _corename(library) != _AVX512_CORE or not _products_agree():
        _reload_kernels(library, before)
        return f"unchanged: the {_AVX512_CORE} kernels failed their check; OpenBLAS runs its {before} kernels"
    return f"OpenBLAS kernels {before} -> {_AVX512_CORE} (the CPU has AVX-512)"


def _reload_kernels(library, core):
    """OpenBLAS's own start-up choice again, told ``core`` by OPENBLAS_CORETYPE."""
    os.environ["OPENBLAS_CORETYPE"] = core
    library.gotoblas_dynamic_quit()
    library.gotoblas_dynamic_init()
