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
import math

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

    def __init__(self, name, xp, array_type, from_numpy, to_numpy, make_rng, erf, cache_block=None):
        self.name = name
        self.cache_block = cache_block
        self.xp = xp
        self.array_type = array_type
        self._from_numpy = from_numpy
        self._to_numpy = to_numpy
        self._make_rng = make_rng
        self._erf = erf
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
        """
        self.xp.add.at(a, index, values)

    def __repr__(self):
        return f"Backend({self.name!r})"


# --------------------------------------------------------------------------- #
# NumPy
# --------------------------------------------------------------------------- #

def _numpy_erf(x):
    # NumPy has no erf ufunc; math.erf is exact to double precision. It loops in
    # Python, so GELU(approximate="none") is slow on the CPU: prefer "tanh" there.
    return numpy.asarray(numpy.frompyfunc(math.erf, 1, 1)(x), dtype=x.dtype)


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
