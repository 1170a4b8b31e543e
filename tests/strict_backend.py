"""A strict NumPy backend for the CPU test suite: arrays that act like CuPy's.

CuPy arrays live on the GPU, and CuPy refuses to turn them into NumPy arrays
behind your back: ``numpy.asarray(cupy_array)`` raises, and so does mixing a
NumPy array into a CuPy op. Code that calls ``np.something`` on an op's input,
or builds a helper array with ``np.zeros``, works on the CPU and breaks on the
GPU. This backend makes it break on the CPU too, so the CPU suite catches it:

- ``StrictArray`` wraps a NumPy array and refuses ``__array__`` (implicit
  conversion), NumPy's functions (``np.exp(a)``, ``np.sum(a)``) and ufuncs,
  and being mixed with a plain ``numpy.ndarray`` (``a + np.ones(3)``);
- ``strict_numpy`` is its array module (``xp``): NumPy's functions, taking and
  returning StrictArrays, refusing plain NumPy arrays as CuPy does;
- reductions return 0-d arrays, not NumPy scalars, as CuPy does.

It is stricter than CuPy in one way, on purpose: CuPy lets ``np.exp(cupy_array)``
dispatch to CuPy, but op code must say ``xp.exp``, so here that raises.
"""
import numpy as np

from minigrad.backend import Backend, _numpy_erf

__all__ = ["StrictArray", "strict_numpy", "make_strict_backend"]


class StrictArrayError(TypeError):
    """Code did with a device-like array what CuPy would refuse."""


def _unwrap(value):
    """StrictArrays (also inside tuples, lists, dicts) to NumPy; a plain ndarray is refused."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise StrictArrayError(
            "a plain numpy.ndarray was mixed into an op on strict (device-like) arrays; "
            "CuPy refuses this too: build arrays with xp = get_array_module(x)"
        )
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results back to StrictArrays; NumPy scalars become 0-d arrays, as in CuPy."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _strict(function):
    """A NumPy function or method that takes and returns StrictArrays."""
    def strict_function(*args, **kwargs):
        result = function(*_unwrap(args), **_unwrap(kwargs))
        return NotImplemented if result is NotImplemented else _wrap(result)
    strict_function.__name__ = getattr(function, "__name__", "strict_function")
    return strict_function


class StrictArray:
    """A NumPy array that refuses implicit conversion to NumPy (as a CuPy array does)."""

    __slots__ = ("_a",)
    __array_ufunc__ = None                    # np.exp(a), ndarray + a: TypeError

    def __init__(self, array):
        self._a = array

    def __array__(self, dtype=None, copy=None):
        raise StrictArrayError(
            "implicit conversion of a strict (device-like) array to a NumPy array; "
            "CuPy refuses this too: use minigrad.backend.to_numpy(x) or Tensor.numpy()"
        )

    def __array_function__(self, func, types, args, kwargs):
        raise StrictArrayError(
            f"numpy.{func.__name__} was called on a strict (device-like) array; op code "
            "must call the array module of its inputs: xp = get_array_module(x)"
        )

    # what it is
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        return f"strict({self._a!r})"

    # explicit conversions CuPy allows (they synchronise with the device)
    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def item(self):
        return self._a.item()

    # indexing
    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    # every other method (sum, reshape, astype, ...) through NumPy's, wrapped
    def __getattr__(self, name):
        if name.startswith("__"):       # __array_interface__ & co. would hand NumPy the data
            raise AttributeError(name)
        attribute = getattr(self._a, name)
        return _strict(attribute) if callable(attribute) else _wrap(attribute)


def _operator(name):
    def method(self, *args):
        result = getattr(self._a, name)(*_unwrap(args))
        return NotImplemented if result is NotImplemented else _wrap(result)
    method.__name__ = name
    return method


def _inplace_operator(name):
    def method(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self
    method.__name__ = name
    return method


for _name in [
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
    "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
    "__rmod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
    "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__",
    "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__",
    "__neg__", "__pos__", "__abs__", "__invert__",
]:
    setattr(StrictArray, _name, _operator(_name))
for _name in ["__iadd__", "__isub__", "__imul__", "__itruediv__", "__iand__", "__ior__"]:
    setattr(StrictArray, _name, _inplace_operator(_name))
StrictArray.__hash__ = None


class _StrictUfunc:
    """A NumPy ufunc on StrictArrays, with its methods (``add.at`` is the scatter-add)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _strict(self._ufunc)(*args, **kwargs)

    def __getattr__(self, name):
        attribute = getattr(self._ufunc, name)
        return _strict(attribute) if callable(attribute) else attribute


# The array-module names op code may use: each checked to exist in CuPy (>= 13),
# with NumPy's meaning. A name outside this list raises AttributeError, so an op
# that reaches for a NumPy-only function fails here, on the CPU, not on the GPU.
# Add a name only after checking CuPy's reference for it.
CUPY_NAMES = frozenset("""
    abs absolute add all any arange argmax argmin asarray broadcast_to clip
    concatenate copy cos divide empty empty_like equal exp expand_dims float16
    float32 float64 full full_like greater greater_equal int32 int64 isfinite isinf
    isnan less less_equal log log1p logical_and logical_not logical_or matmul maximum
    mean minimum moveaxis multiply negative not_equal ones ones_like pad power
    reshape sign sin split sqrt square squeeze stack subtract sum swapaxes tanh
    transpose uint8 where zeros zeros_like bool_ int8 newaxis inf nan pi e
    triu tril argsort argpartition take_along_axis repeat ascontiguousarray array
""".split()) | {"errstate"}   # errstate: NumPy computes here; code reaches it via getattr(xp, ..., None)


class _StrictModule:
    """NumPy's namespace limited to ``CUPY_NAMES``, taking and returning StrictArrays."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        if name not in CUPY_NAMES:
            raise AttributeError(
                f"strict backend: xp.{name} is not in the list of functions checked to "
                "exist in CuPy (tests/strict_backend.py CUPY_NAMES); check CuPy has it, then add it"
            )
        attribute = getattr(self._module, name)
        if isinstance(attribute, np.ufunc):
            return _StrictUfunc(attribute)
        if isinstance(attribute, type):               # dtypes, errstate: as they are
            return attribute
        return _strict(attribute) if callable(attribute) else attribute

    def __repr__(self):
        return "strict_numpy"


strict_numpy = _StrictModule(np)


class _StrictGenerator:
    """A NumPy Generator whose draws are StrictArrays."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return _strict(getattr(self._rng, name))


def make_strict_backend():
    """The "strict" backend, for ``minigrad.backend.register_backend``."""
    return Backend(
        name="strict",
        xp=strict_numpy,
        array_type=StrictArray,
        from_numpy=lambda a: StrictArray(np.array(a, copy=True)),
        to_numpy=lambda a: a._a.copy(),
        make_rng=_StrictGenerator,
        erf=lambda x: StrictArray(_numpy_erf(x._a)),
        cache_block=1000,        # small, so blocked updates cross blocks on small test arrays
    )
