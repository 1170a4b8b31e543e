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
- reductions return 0-d arrays, not NumPy scalars, as CuPy does;
- an out-of-range integer-array index wraps around, as CuPy's does (NumPy raises).

It is stricter than CuPy in one way, on purpose: CuPy lets ``np.exp(cupy_array)``
dispatch to CuPy, but op code must say ``xp.exp``, so here that raises.

Host reads. CuPy does allow the explicit reads (``bool(a)``, ``float(a)``, ``int(a)``,
``a.item()``, ``a.tolist()``, ``a.get()``, ``cupy.asnumpy(a)``, printing), and a
boolean-mask index or ``nonzero()``, whose result size depends on the data: each one
waits for every queued kernel to finish and copies to the host, a synchronization
that stalls the GPU's pipeline. Inside a training step they are bugs of speed, not
of correctness, so they pass here too, except in two modes:

    with no_host_sync():            # any host read raises HostSyncError, naming it
        ...one training step...
    with count_host_syncs() as n:   # counts them instead: n.count, n.reads
        ...

Explicit transfers *to* the device (``xp.asarray(python_list)``, ``from_numpy``) are
not reads and pass.
"""
import contextlib
import traceback

import numpy as np

from minigrad.backend import Backend, _numpy_erf

__all__ = ["StrictArray", "strict_numpy", "make_strict_backend", "StrictArrayError", "HostSyncError",
           "no_host_sync", "count_host_syncs"]


class StrictArrayError(TypeError):
    """Code did with a device-like array what CuPy would refuse."""


class HostSyncError(StrictArrayError):
    """A device->host read inside ``no_host_sync()``: on a GPU it would stall the step."""


# The active mode: None (host reads pass), "raise" or a _SyncCounter.
_mode = None


class _SyncCounter:
    """What ``count_host_syncs()`` gives: ``count`` reads, and ``reads``, each a
    (what, where) pair: the conversion and the line of minigrad or models code that
    asked for it."""

    def __init__(self):
        self.count, self.reads = 0, []


@contextlib.contextmanager
def no_host_sync():
    """Within the block, every device->host read of a strict array raises ``HostSyncError``."""
    global _mode
    previous, _mode = _mode, "raise"
    try:
        yield
    finally:
        _mode = previous


@contextlib.contextmanager
def count_host_syncs():
    """Within the block, every device->host read of a strict array is counted (not refused)."""
    global _mode
    previous, _mode = _mode, _SyncCounter()
    try:
        yield _mode
    finally:
        _mode = previous


def _host_read(what):
    """A device->host read is about to happen: refuse it or count it, by the mode."""
    if _mode is None:
        return
    where = _caller()
    if _mode == "raise":
        raise HostSyncError(
            f"{what} of a strict (device-like) array inside no_host_sync(), at {where}: on a GPU "
            "this waits for the device and copies to the host, stalling the training step; "
            "keep the value on the device (xp.where, a device flag) or read it outside the step")
    _mode.count += 1
    _mode.reads.append((what, where))


# Frames that only pass a read on (Tensor.item -> to_numpy -> the backend): the line
# named is the first outside them, the code that asked for the value.
_PASSING_ON = ("strict_backend.py", "minigrad/backend.py", "minigrad/tensor.py")


def _caller():
    """file:line (and code) of the innermost frame that asked for the read."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.replace("\\", "/").endswith(_PASSING_ON):
            return f"{frame.filename}:{frame.lineno} ({frame.line})"
    return "?"


def _wrapped_around(index, shape):
    """The index with every integer-array part taken modulo its axis's length: CuPy
    wraps an out-of-range integer-array index around where NumPy raises, so a range
    check that is missing gives a silently wrong answer on the GPU, and here too."""
    parts = index if isinstance(index, tuple) else (index,)

    def axes_taken(part):            # a boolean mask takes as many axes as it has
        return part.ndim if isinstance(part, np.ndarray) and part.dtype == bool else 1

    taken = sum(axes_taken(p) for p in parts if p is not None and p is not Ellipsis)
    axis, wrapped = 0, []
    for part in parts:
        if part is Ellipsis:
            axis += len(shape) - taken
        elif part is not None:
            if isinstance(part, np.ndarray) and part.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
                part = part % shape[axis]
            axis += axes_taken(part)
        wrapped.append(part)
    return tuple(wrapped) if isinstance(index, tuple) else wrapped[0]


def _is_mask(index):
    """Whether an index holds a boolean array (its result size depends on the data)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (StrictArray, np.ndarray)) and p.dtype == bool and p.ndim > 0 for p in parts)


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
        _host_read("printing")
        return f"strict({self._a!r})"

    # explicit conversions CuPy allows (they synchronise with the device)
    def __bool__(self):
        _host_read("bool()")
        return bool(self._a)

    def __float__(self):
        _host_read("float()")
        return float(self._a)

    def __int__(self):
        _host_read("int()")
        return int(self._a)

    def item(self):
        _host_read(".item()")
        return self._a.item()

    def tolist(self):
        _host_read(".tolist()")
        return self._a.tolist()

    def get(self):
        """CuPy's copy to the host (``cupy.ndarray.get``)."""
        _host_read(".get()")
        return self._a.copy()

    def nonzero(self):
        _host_read(".nonzero() (its size depends on the data)")
        return _wrap(self._a.nonzero())

    # indexing: a boolean mask makes a result whose size the host must learn
    def __getitem__(self, index):
        if _is_mask(index):
            _host_read("indexing with a boolean mask (the result's size depends on the data)")
        return _wrap(self._a[_wrapped_around(_unwrap(index), self._a.shape)])

    def __setitem__(self, index, value):
        if _is_mask(index):
            _host_read("assigning through a boolean mask (CuPy counts the mask's True values first)")
        self._a[_wrapped_around(_unwrap(index), self._a.shape)] = _unwrap(value)

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
    concatenate copy copyto cos divide empty empty_like equal exp expand_dims float16
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


def _to_numpy(array):
    _host_read("a copy to the host (to_numpy, Tensor.numpy(), Tensor.item())")
    return array._a.copy()


def make_strict_backend():
    """The "strict" backend, for ``minigrad.backend.register_backend``."""
    return Backend(
        name="strict",
        xp=strict_numpy,
        array_type=StrictArray,
        from_numpy=lambda a: StrictArray(np.array(a, copy=True)),
        to_numpy=_to_numpy,
        make_rng=_StrictGenerator,
        erf=lambda x: StrictArray(_numpy_erf(x._a)),
        cache_block=1000,        # small, so blocked updates cross blocks on small test arrays
    )
