"""The NumPy backend's erf (minigrad/backend.py ``_numpy_erf``) against ``math.erf``.

- float64 (Cody's rational approximations) and float32 (one formula, computed in
  float32) within 4 ulp of the exact value, over the whole range:
  normal and uniform draws, magnitudes from the smallest subnormal to 1e300, both
  signs, the region boundaries and their neighbours;
- the special values: ±0 keep their sign, ±inf give ±1, nan stays nan; float16;
  shapes (0-d, empty, 3-D) kept; an integer array refused;
- erf is odd, exactly (hypothesis);
- the float32 polynomial is what its comment says: refitting it gives its coefficients.

"ulp" here is the spacing of the dtype at the exact value (math.erf, correctly
rounded to within an ulp of float64, is exact at float32's scale).
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minigrad import backend
from minigrad.backend import _numpy_erf

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 0.46875, -0.46875, 4.0, -4.0, 0.5, 1.0, 2.0,
            3.9, 4.5, 6.0, 26.5, 26.6, 27.0, 30.0, 1e300, 5e-324, -5e-324, 1e-45, -1e-45, 1.2e-38]


def sample(dtype):
    """A fixed, wide sample of inputs of ``dtype`` (see the module docstring)."""
    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).smallest_subnormal
    boundaries = [np.nextafter(dtype(b), dtype(direction))
                  for b in (0.46875, 4.0) for direction in (-np.inf, np.inf)]
    magnitudes = 10.0 ** rng.uniform(math.log10(tiny), 2, 60000) * rng.choice([-1, 1], 60000)
    xs = np.concatenate([rng.standard_normal(60000) * 3, rng.uniform(-8, 8, 60000), magnitudes,
                         boundaries, SPECIALS])
    with np.errstate(over="ignore"):
        return xs.astype(dtype)


def ulp_errors(got, xs, dtype):
    """|got - erf(x)| in units of ``dtype``'s spacing at erf(x), for finite inputs."""
    exact = np.array([math.erf(float(v)) for v in xs])
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


@pytest.mark.parametrize("dtype, bound", [(np.float64, 4.0), (np.float32, 4.0)])
def test_erf_is_within_a_few_ulp_of_math_erf(dtype, bound):
    xs = sample(dtype)
    finite = ~np.isnan(xs)
    errors = ulp_errors(_numpy_erf(xs)[finite], xs[finite], dtype)
    worst = np.argmax(errors)
    assert errors[worst] <= bound, f"{errors[worst]:.2f} ulp at x = {xs[finite][worst]!r}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_special_values(dtype):
    xs = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    got = _numpy_erf(xs)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.array([0.0, -0.0, 1.0, -1.0, np.nan], dtype=dtype))
    assert list(np.signbit(got[:2])) == [False, True]


def test_float16_goes_through_float32():
    xs = np.linspace(-5, 5, 1001).astype(np.float16)
    exact = np.array([math.erf(float(v)) for v in xs]).astype(np.float16)
    np.testing.assert_array_equal(_numpy_erf(xs), exact)


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (3, 70000 // 3 + 1, 2)])
def test_shapes_are_kept_across_blocks(shape):
    xs = np.random.default_rng(1).standard_normal(shape)
    got = _numpy_erf(xs)
    assert got.shape == xs.shape
    np.testing.assert_allclose(got, np.vectorize(math.erf)(xs) if xs.size else xs, rtol=1e-15, atol=0)


def test_an_integer_array_is_refused():
    with pytest.raises(TypeError, match="float array, got dtype int64"):
        _numpy_erf(np.arange(3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(x=st.floats(allow_nan=False, width=32))
def test_erf_is_odd_exactly(dtype, x):
    xs = np.array([x, -x], dtype=dtype)
    got = _numpy_erf(xs)
    assert got[1] == -got[0]


def test_the_float32_polynomial_is_the_documented_fit():
    from numpy.polynomial import Chebyshev, Polynomial
    n = 4000
    y = 2.0 * (np.cos(np.pi * (np.arange(n) + 0.5) / n) + 1.0)         # Chebyshev nodes of [0, 4]
    g = [(math.log(math.erfc(v)) + v * v) / v for v in y]             # log erfc(y) = -y^2 + y G(y)
    fit = Chebyshev.fit(y, g, 10, domain=[0, 4])
    np.testing.assert_allclose(fit.convert(kind=Polynomial).coef, backend._ERF32_G, rtol=0, atol=1e-13)
    assert abs(fit(0.0) + 2 / math.sqrt(math.pi)) < 3e-8                  # G(0) = -2/sqrt(pi)
    assert np.max(np.abs(fit(y) - g)) < 3e-8
