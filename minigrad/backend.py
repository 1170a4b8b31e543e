"""Backends: the one module that knows NumPy and CuPy by name.

A backend is an array module (``xp``) plus the few things NumPy and CuPy do
differently: how an array is copied to and from the host, how random numbers are
drawn, and how a scatter-add is written. Every other module takes its array
module from its inputs::

    xp = get_array_module(x)      # numpy or cupy, chosen once per op

CuPy is imported here only, and only when it is first asked for, so that the
package imports on a machine without it.

Public functions (re-exported as ``minigrad.set_backend`` etc.):

    set_backend("numpy" | "cupy")   the default backend for new tensors ("cpu" and
                                    "cuda", PyTorch's device names, mean the same two)
    get_backend() -> str            its name
    use_backend(name)               context manager: a default for a block
    manual_seed(seed)               seed the random generator of every backend
"""
import contextlib
import importlib

import numpy

__all__ = [
    "Backend", "BackendError", "register_backend", "backend_by_name",
    "backend_of", "backend_names", "is_dtype", "get_array_module", "set_backend", "get_backend",
    "current_backend", "use_backend", "manual_seed", "to_numpy", "asarray",
]


class BackendError(RuntimeError):
    """A backend cannot run here, or two backends were mixed in one op."""


class Backend:
    """One array library: its module, its array type and its host transfers.

    Attributes:
        name:        "numpy", "cupy" (or a test backend's name).
        xp:          the array module; code calls ``xp.exp``, ``xp.matmul``, ...
        array_type:  the class of its arrays (``isinstance`` tells the backend).
        rng:         a ``Generator`` with ``random(size, dtype)`` and
                     ``standard_normal(size, dtype)``, reseeded by ``manual_seed``.
        cache_block: how many elements a chain of in-place elementwise ops (the
                     optimizer updates) should take at a time, so that each block
                     of its operands is read from memory once and stays in cache
                     for the whole chain; None runs each op over whole arrays (a
                     GPU, where every op is a kernel launch over all elements).
    """

    def __init__(self, name, xp, array_type, from_numpy, to_numpy, make_rng, erf, cache_block=None,
                 scatter_add=None):
        self.name = name
        self.cache_block = cache_block
        self.xp = xp
        self.array_type = array_type
        self._from_numpy = from_numpy
        self._to_numpy = to_numpy
        self._make_rng = make_rng
        self._erf = erf
        self._scatter_add = scatter_add
        self.rng = make_rng(_seed)

    def from_numpy(self, array):
        """Copy a host NumPy array onto this backend (no copy for NumPy itself)."""
        return self._from_numpy(array)

    def to_numpy(self, array):
        """A NumPy array with the values of ``array`` (a host copy for CuPy)."""
        return self._to_numpy(array)

    def seed(self, seed):
        """Reseed this backend's ``rng``."""
        self.rng = self._make_rng(seed)

    def new_rng(self, seed):
        """A separate generator on this backend, leaving ``rng`` untouched."""
        return self._make_rng(seed)

    def erf(self, x):
        """The error function elementwise (NumPy has none; see ``_numpy_erf``)."""
        return self._erf(x)

    def scatter_add(self, a, index, values):
        """``a[index] += values`` in place, where repeated indices all add up.

        This is ``numpy.add.at``; current CuPy has the same ufunc method
        (``cupy.add.at``, which replaced ``cupyx.scatter_add``), so one line serves
        both. Plain ``a[index] += values`` would keep only one of the duplicates.
        A backend may bring a faster way to the same sums (NumPy's: ``_numpy_scatter_add``).
        """
        if self._scatter_add is not None:
            self._scatter_add(a, index, values)
        else:
            self.xp.add.at(a, index, values)

    def __repr__(self):
        return f"Backend({self.name!r})"


# --------------------------------------------------------------------------- #
# NumPy
# --------------------------------------------------------------------------- #

def _numpy_erf(x):
    """The error function elementwise on a NumPy float array (NumPy has no erf ufunc).

    Vectorized, block by block (each block stays in cache for the whole chain):

    - float64: W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
      approximations for the error function", Math. Comp. 23, 1969; netlib
      specfun CALERF), erf on |x| <= 0.46875 and erfc = 1 - erf beyond, exp(-x^2)
      taken with x^2 split so that its argument is exact; within 4 ulp of
      ``math.erf``.
    - float32 (and float16, through float32): one formula for every x, computed in
      float32 (see ``_erf_float32``); within 4 ulp of the exact value (most of it
      NumPy's float32 expm1, itself up to 2.3 ulp off).

    ±0 keep their sign, ±inf give ±1, nan stays nan. The tests hold both against
    ``math.erf`` over the whole range (tests/test_erf.py).
    """
    if x.dtype.kind != "f":
        raise TypeError(f"erf: expected a float array, got dtype {x.dtype}")
    erf_block = _erf_float64 if x.dtype == numpy.float64 else _erf_float32
    work = numpy.float64 if x.dtype == numpy.float64 else numpy.float32
    out = numpy.empty(x.shape, dtype=x.dtype)
    x_flat, out_flat = x.reshape(-1), out.reshape(-1)
    for start in range(0, x_flat.size, _ERF_BLOCK):
        block = x_flat[start:start + _ERF_BLOCK]
        out_flat[start:start + _ERF_BLOCK] = erf_block(block.astype(work, copy=False))
    return out


_ERF_BLOCK = 65536            # elements per block: 256 KB of float32, 512 KB of float64

# Cody (1969), double precision: erf(x) = x R_1(x^2) on |x| <= 0.46875;
# erfc(x) = exp(-x^2) R_2(|x|) on 0.46875 < |x| <= 4;
# erfc(x) = exp(-x^2) / |x| (1/sqrt(pi) + R_3(1/x^2) / x^2) beyond.
# Each R = num/den in Cody's nested form (see _cody_ratio); num's last entry is
# its highest-order coefficient, as in CALERF.
_CODY_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
           3.20937758913846947e03, 1.85777706184603153e-1)
_CODY_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
           2.84423683343917062e03)
_CODY_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_CODY_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_CODY_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_CODY_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
_ERFC_ZERO = 26.543           # erfc(x) underflows to 0 in float64 beyond it (Cody's XBIG)


def _cody_ratio(z, num, den):
    """Cody's nested rational form: n = num[-1] z, d = z; then for each i,
    n = (n + num[i]) z, d = (d + den[i]) z; finally (n + num[-2]) / (d + den[-1])."""
    n, d = num[-1] * z, z.copy()
    for a, b in zip(num[:-2], den[:-1]):
        n += a
        n *= z
        d += b
        d *= z
    n += num[-2]
    d += den[-1]
    n /= d
    return n


def _exp_minus_square(y):
    """exp(-y^2) for y >= 0, y^2 split as s^2 + (y - s)(y + s) with s = y rounded down
    to a multiple of 1/16: s^2 is exact, so the large part of the argument carries no
    rounding error (Cody's device); two exps."""
    s = numpy.trunc(16.0 * y) / 16.0
    small = (y - s) * (y + s)
    s *= s
    return numpy.exp(-s) * numpy.exp(-small)


def _erf_float64(x):
    """Cody's erf on a block of float64 (see ``_numpy_erf``)."""
    y = numpy.abs(x)
    out = numpy.empty_like(x)
    inner = y <= 0.46875
    x_inner = x[inner]
    out[inner] = x_inner * _cody_ratio(x_inner * x_inner, _CODY_A, _CODY_B)
    middle = (y > 0.46875) & (y <= 4.0)
    y_middle = y[middle]
    erfc = _exp_minus_square(y_middle) * _cody_ratio(y_middle, _CODY_C, _CODY_D)
    out[middle] = numpy.copysign(1.0 - erfc, x[middle])
    outer = y > 4.0                                                  # nan is in no region
    y_outer = numpy.minimum(y[outer], _ERFC_ZERO)                    # inf: erfc = 0
    z = 1.0 / (y_outer * y_outer)
    erfc = _exp_minus_square(y_outer) * (_INV_SQRT_PI - z * _cody_ratio(z, _CODY_P, _CODY_Q)) / y_outer
    out[outer] = numpy.copysign(1.0 - erfc, x[outer])
    nan = numpy.isnan(x)
    out[nan] = x[nan]
    return out


# float32: erf(x) = sign(x) (1 - exp(-y^2 + y G(y))), y = min(|x|, 4), that is,
# log erfc(y) = -y^2 + y G(y), computed as -expm1(y G(y) - y^2) so that small |x|
# keep their relative accuracy (no 1 - (1 - erf) cancellation). G is smooth on
# [0, 4] (G(0) = -2/sqrt(pi)); beyond y = 4, erf rounds to 1 in float32. G is a
# polynomial of degree 10 in y, the least-squares Chebyshev fit of G on [0, 4]
# (``numpy.polynomial.Chebyshev.fit`` on 4,000 Chebyshev nodes, against math.erf in
# float64; tests/test_erf.py refits it) expanded in powers of y: |error| < 3e-8.
_ERF32_G = (-1.1283791784742163, 0.36338076559741045, -0.10277583558007114,
            0.019128647525886524, 0.00024718344015552433, -0.0018134174902127548,
            0.0007667071486396252, -0.00018635803350773234, 2.8390312229526665e-05,
            -2.518738987709378e-06, 9.946287814356837e-08)    # lowest order first


def _erf_float32(x):
    """erf on a block of float32, in float32 (see the comment above)."""
    y = numpy.minimum(numpy.abs(x), 4.0)                             # nan stays nan
    g = y * _ERF32_G[-1]                                             # Horner
    g += _ERF32_G[-2]
    for c in _ERF32_G[-3::-1]:
        g *= y
        g += c
    g *= y                                                           # y G(y)
    y *= y
    g -= y                                                           # log erfc(y)
    numpy.expm1(g, out=g)
    numpy.negative(g, out=g)                                         # erf(y) >= 0
    # copysign(erf(y), x) as x's sign bit ORed into erf(y)'s: NumPy's copysign is a
    # scalar loop, ~5x slower than these two integer passes
    sign_bit = numpy.bitwise_and(x.view(numpy.int32), numpy.int32(-2**31))
    numpy.bitwise_or(g.view(numpy.int32), sign_bit, out=g.view(numpy.int32))
    return g


def _numpy_scatter_add(a, index, values, block=131072):
    """``numpy.add.at(a, index, values)``, the same sums in the same order, faster for
    whole rows: a (V, D), index (N,) signed integers, values (N, D), as an embedding's backward
    scatters its gradient into the table.

    NumPy's ``add.at`` has a fast loop for a 1-D array and 1-D indices only; given rows
    it walks them element by element (measured for V 1000, N 2048, D 512, float32:
    8.1 ms against 1.5 ms). So the rows are added as 1-D elements of the flattened
    ``a``: row index[n], column j is element index[n] D + j. The rows are taken in
    blocks of ``block`` elements, so that the flat index (N, D) integers, twice the size
    of ``values`` in float32, is never made whole. Each element still receives its
    additions in the order of n, so the result is add.at's bit for bit
    (tests/test_backend.py). Any other index or layout goes to ``add.at`` itself, which
    also raises for an index out of range.
    """
    rows_only = (isinstance(index, numpy.ndarray) and index.ndim == 1 and index.dtype.kind == "i"
                 and a.ndim == 2 and a.flags.c_contiguous and values.shape == index.shape + a.shape[1:])
    if not rows_only or index.size == 0:
        numpy.add.at(a, index, values)
        return
    V, D = a.shape
    if index.min() < -V or index.max() >= V:
        numpy.add.at(a, index, values)               # raises add.at's IndexError
        return
    # the flat index v D + j in the platform's integer: a narrow index (int8, int16)
    # would wrap around
    index = index.astype(numpy.intp, copy=False)
    columns = numpy.arange(D)                        # (D,)
    flat_a = a.reshape(-1)                           # (V D,), a view: a is contiguous
    step = max(1, block // max(D, 1))                # rows per block
    for start in range(0, index.size, step):
        # row v, column j is element v D + j; a negative v (from the end) gives a negative
        # element index, which counts from the end of flat_a just as v from the end of a
        flat_index = index[start:start + step, None] * D + columns      # (n, D)
        numpy.add.at(flat_a, flat_index.reshape(-1), values[start:start + step].reshape(-1))


def _make_numpy_backend():
    return Backend(
        name="numpy",
        xp=numpy,
        array_type=numpy.ndarray,
        from_numpy=lambda a: a,
        to_numpy=lambda a: numpy.array(a, copy=True),
        make_rng=numpy.random.default_rng,
        erf=_numpy_erf,
        # 131,072 elements: 512 KB per float32 operand, 2.5 MB for p, g, m, v and a
        # scratch block, in L3. Measured (Adam, 2-core EPYC): 25M parameters 79 -> 45 ms
        # a step against whole arrays; smaller blocks lose to Python's per-call cost.
        cache_block=131072,
        scatter_add=_numpy_scatter_add,
    )


# --------------------------------------------------------------------------- #
# CuPy (imported lazily, here only)
# --------------------------------------------------------------------------- #

_CUPY_INSTALL = (
    "Install the CuPy wheel that matches your CUDA toolkit: "
    "pip install cupy-cuda12x (CUDA 12) or pip install cupy-cuda13x (CUDA 13); "
    "from a minigrad checkout, pip install -e \".[gpu]\" installs the first."
)


def _make_cupy_backend():
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as error:
        raise BackendError(
            f"backend 'cupy' is not available: CuPy is not installed ({error}). "
            + _CUPY_INSTALL
        ) from None
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError, or a missing driver library
        raise BackendError(
            "backend 'cupy' is not available: CuPy is installed but no CUDA GPU "
            f"is visible ({type(error).__name__}: {error}). Check `nvidia-smi` and "
            "CUDA_VISIBLE_DEVICES, or use set_backend('numpy')."
        ) from None
    if n_gpus == 0:
        raise BackendError(
            "backend 'cupy' is not available: CuPy is installed but no CUDA GPU "
            "is visible (0 devices). Check `nvidia-smi` and CUDA_VISIBLE_DEVICES, "
            "or use set_backend('numpy')."
        )
    special = importlib.import_module("cupyx.scipy.special")
    return Backend(
        name="cupy",
        xp=cupy,
        array_type=cupy.ndarray,
        from_numpy=cupy.asarray,
        to_numpy=cupy.asnumpy,
        make_rng=cupy.random.default_rng,
        erf=special.erf,
    )


# --------------------------------------------------------------------------- #
# The registry and the default backend
# --------------------------------------------------------------------------- #

_seed = None                      # the seed of the last manual_seed(), or None
_loaders = {"numpy": _make_numpy_backend, "cupy": _make_cupy_backend}
# PyTorch's device names, accepted wherever a backend is named: x.to("cuda")
_ALIASES = {"cpu": "numpy", "cuda": "cupy"}
_loaded = {}                      # name -> Backend, filled on first use
_current = "numpy"


def register_backend(name, loader):
    """Add a backend made by ``loader()`` (the test suite adds a strict one)."""
    _loaders[name] = loader
    _loaded.pop(name, None)


def backend_names():
    """The names of the backends minigrad knows (loaded or not), with PyTorch's
    device names for them ("cpu" for "numpy", "cuda" for "cupy")."""
    return sorted(list(_loaders) + list(_ALIASES))


def backend_by_name(name):
    """The ``Backend`` called ``name`` (or "cpu", "cuda"), loading it on first use."""
    if name in _ALIASES:
        name = _ALIASES[name]
    if name not in _loaded:
        if name not in _loaders:
            raise BackendError(
                f"unknown backend {name!r}: expected one of {backend_names()}"
            )
        _loaded[name] = _loaders[name]()
    return _loaded[name]


def backend_of(array):
    """The ``Backend`` an array belongs to.

    CuPy arrays are recognised by their class's module, so asking never imports
    CuPy on a machine that does not use it.
    """
    for backend in _loaded.values():
        if isinstance(array, backend.array_type):
            return backend
    if type(array).__module__.split(".")[0] == "cupy":
        return backend_by_name("cupy")
    raise TypeError(
        f"expected an array of a minigrad backend ({sorted(_loaded)}), "
        f"got {type(array).__module__}.{type(array).__name__}"
    )


def is_array(value):
    """Whether ``value`` is an array of a minigrad backend (NumPy or CuPy)."""
    try:
        backend_of(value)
        return True
    except TypeError:
        return False


def is_dtype(value):
    """Whether ``value`` names a dtype ("float32", ``numpy.float64``, ...): how ``.to``
    tells a dtype from a backend name."""
    if value is None:                 # numpy.dtype(None) is float64, not "no dtype"
        return False
    try:
        numpy.dtype(value)
    except TypeError:
        return False
    return True


def get_array_module(*arrays):
    """The array module (``numpy`` or ``cupy``) of the first array given."""
    return backend_of(arrays[0]).xp


def set_backend(name):
    """Make ``name`` the backend of new tensors; raises ``BackendError`` if it can't run."""
    global _current
    _current = backend_by_name(name).name


def get_backend():
    """The name of the default backend: "numpy" or "cupy"."""
    return _current


def current_backend():
    """The default ``Backend`` object."""
    return backend_by_name(_current)


@contextlib.contextmanager
def use_backend(name):
    """Within the block, new tensors are made on backend ``name``."""
    previous = _current
    set_backend(name)
    try:
        yield backend_by_name(name)
    finally:
        set_backend(previous)


def manual_seed(seed):
    """Seed the random generator of every backend, now and when first loaded."""
    global _seed
    _seed = seed
    for backend in _loaded.values():
        backend.seed(seed)


def to_numpy(array):
    """A NumPy copy of an array of any backend."""
    return backend_of(array).to_numpy(array)


def asarray(data, dtype=None, backend=None):
    """An array on ``backend`` (default: the current one) from Python data or an array.

    The dtype rules of ``minigrad.Tensor``: an array keeps its dtype (float64 stays
    float64); Python floats, and lists of them, become float32; Python ints stay
    integer (int64, for indices); bools stay bool. ``dtype`` overrides all of these.
    Arrays of another backend are moved: this is an explicit construction.
    """
    target = backend_by_name(backend or _current)
    try:
        source = backend_of(data)
    except TypeError:
        source = None
    if source is None:
        host = numpy.asarray(data)
        if dtype is None and host.dtype == numpy.float64 and not isinstance(data, numpy.generic):
            host = host.astype(numpy.float32)     # Python floats: float32 by default
        array = target.from_numpy(host)
    elif source is target:
        array = data
    else:
        array = target.from_numpy(source.to_numpy(data))
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return array


backend_by_name("numpy")          # NumPy is always loaded: arrays are recognised by it
