"""minigrad/blas.py: telling and widening the kernels of NumPy's OpenBLAS.

The switch runs in a child process (it changes the kernels of the whole process, and
the rest of the suite should run on the kernels it started with): where it applies,
the kernels become SkylakeX, products stay right, a second call changes nothing, and a
switch whose check fails is undone. Where it cannot apply (no AVX-512, no OpenBLAS),
it says why and changes nothing.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from minigrad import blas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code, **environment):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, **environment))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


APPLIES = blas.openblas_core() is not None and blas.openblas_core() not in blas._AVX512_CORES \
    and all(flag in blas._cpu_flags() for flag in blas._AVX512_FLAGS)


def test_the_core_is_named_where_numpy_runs_openblas():
    core = blas.openblas_core()
    assert core is None or (isinstance(core, str) and core)


@pytest.mark.skipif(not APPLIES, reason="needs an AVX-512 CPU on which OpenBLAS chose narrower kernels")
def test_the_switch_widens_the_kernels_and_products_stay_right():
    before, said, after, again, check = run_child("""
        import numpy as np
        from minigrad import blas
        print(blas.openblas_core())
        print(blas.use_widest_kernels())
        print(blas.openblas_core())
        print(blas.use_widest_kernels())
        rng = np.random.default_rng(1)
        a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 100))
        exact = np.einsum("ik,kj->ij", a, b)
        for dtype, tolerance in (("float32", 1e-4), ("float64", 1e-12)):
            got = a.astype(dtype) @ b.astype(dtype)
            assert np.allclose(got, exact, rtol=tolerance, atol=tolerance), dtype
        print("products agree")
    """)
    assert (said, after) == (f"OpenBLAS kernels {before} -> SkylakeX (the CPU has AVX-512)", "SkylakeX")
    assert again == "unchanged: OpenBLAS already runs its SkylakeX kernels"
    assert check == "products agree"


@pytest.mark.skipif(not APPLIES, reason="needs an AVX-512 CPU on which OpenBLAS chose narrower kernels")
def test_a_switch_whose_check_fails_is_undone():
    before, said, after = run_child("""
        from minigrad import blas
        print(blas.openblas_core())
        blas._products_agree = lambda: False
        print(blas.use_widest_kernels())
        print(blas.openblas_core())
    """)
    assert said == f"unchanged: the SkylakeX kernels failed their check; OpenBLAS runs its {before} kernels"
    assert after == before


def test_a_cpu_without_avx512_is_left_alone(monkeypatch):
    core = blas.openblas_core()
    if core is None or core in blas._AVX512_CORES:
        pytest.skip("needs OpenBLAS on narrower kernels than AVX-512")
    monkeypatch.setattr(blas, "_cpu_flags", lambda: {"avx2", "fma"})
    said = blas.use_widest_kernels()
    assert said == f"unchanged: OpenBLAS runs its {core} kernels; the CPU lacks " \
                   "avx512f, avx512cd, avx512bw, avx512dq, avx512vl"
    assert blas.openblas_core() == core


def test_without_openblas_nothing_changes(monkeypatch):
    monkeypatch.setattr(blas, "_openblas_library", lambda: None)
    assert blas.use_widest_kernels() == "unchanged: no OpenBLAS with DYNAMIC_ARCH found in this process"
    assert blas.openblas_core() is None


def test_the_check_product_passes_on_the_kernels_numpy_started_with():
    assert blas._products_agree()
