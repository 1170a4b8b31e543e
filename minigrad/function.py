"""The ``Function`` base class: one differentiable op, forward and backward.

A subclass writes two methods on backend arrays (never on Tensors):

    forward(*xs)  -> y or (y1, y2, ...)     the op itself
    backward(*gys) -> gx or (gx1, gx2, ...) the vector-Jacobian product:
                      given gy = dL/dy for every output, return dL/dx for every
                      input (``None`` for an input that needs no gradient)

Arrays that backward needs are stored with ``self.save_for_backward(...)`` and
read back as ``self.saved``; the engine drops them, and the references to the
inputs, after ``backward()`` unless ``retain_graph=True``: that frees a graph's
memory.

Calling a Function (``Exp()(x)``) runs forward and, when grad mode is on and an
input requires grad, records the call as the ``creator`` of its outputs: that
record is the graph that ``Tensor.backward()`` walks.
"""
import contextlib
import weakref

from minigrad.backend import BackendError, backend_of
from minigrad.tensor import Tensor, as_tensor

__all__ = ["Function", "no_grad", "enable_grad", "is_grad_enabled"]

_grad_enabled = True

# Mixed precision: inside ``minigrad.amp.autocast`` a function (op, inputs) -> the
# inputs cast to the precision of that op's kind; None outside (see minigrad/amp.py).
autocast_inputs = None


def is_grad_enabled():
    """Whether ops now record the graph (False inside ``no_grad()``)."""
    return _grad_enabled


@contextlib.contextmanager
def _grad_mode(enabled):
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager: ops inside record no graph and return tensors without grad."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: record the graph again inside a ``no_grad()`` block."""
    return _grad_mode(True)


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    def __call__(self, *inputs):
        if autocast_inputs is not None:                # mixed precision (minigrad.amp): cast per op
            inputs = autocast_inputs(self, inputs)
        if not uniform_tensors(inputs):                # the common case passes in one loop
            inputs = _checked_inputs(inputs, type(self).__name__)
        if _grad_enabled:
            needs = tuple([x.requires_grad for x in inputs])
            record = True in needs
        else:                                          # no_grad(): nothing needs a gradient
            needs, record = (False,) * len(inputs), False
        self.needs_input_grad = needs
        self._saved = ()
        # One and two inputs (most ops) unrolled: the list comprehension of the general
        # case costs a call frame in Python 3.11, a tenth of a small op's overhead.
        if len(inputs) == 2:
            ys = self.forward(inputs[0].data, inputs[1].data)
        elif len(inputs) == 1:
            ys = self.forward(inputs[0].data)
        else:
            ys = self.forward(*[x.data for x in inputs])
        single = not isinstance(ys, tuple)

        if not record:                                 # no graph: wrap the outputs, keep nothing
            self._saved = None
            if single:
                return Tensor._from_op(ys, False)
            return tuple([Tensor._from_op(y, False) for y in ys])

        ys = (ys,) if single else ys
        outputs = tuple([Tensor._from_op(y, y.dtype.kind == "f") for y in ys])
        self.inputs = inputs
        # Weak references: the graph must not keep an unused output alive.
        self.outputs = [weakref.ref(t) for t in outputs]
        self.output_meta = [(y.shape, y.dtype) for y in ys]
        self.freed = False
        for t in outputs:
            if t.requires_grad:
                t.creator = self
        return outputs[0] if single else outputs

    # -- what subclasses write -------------------------------------------------
    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    # -- buffers kept for backward --------------------------------------------
    def save_for_backward(self, *arrays):
        """Keep ``arrays`` until backward; the engine frees them afterwards."""
        self._saved = arrays

    @property
    def saved(self):
        return self._saved

    def free_buffers(self):
        """Drop the saved buffers: called by the engine right after this backward."""
        self._saved = None
        self.freed = True

    def release_inputs(self):
        """Drop the inputs: called by the engine once the whole walk is done.

        Without them the intermediate tensors (the activations) are no longer held
        by the graph, so their memory goes as soon as the user drops them.
        """
        self.inputs = None

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _checked_inputs(inputs, op_name):
    """Inputs as Tensors, all on one backend and of at most one float dtype.

    The common case (Tensors whose arrays share one type and one dtype) is checked
    in a single pass: this runs on every op, so its cost is the framework's per-op
    overhead. Anything else takes the full check, which names what is wrong.
    """
    if uniform_tensors(inputs):
        return inputs
    inputs = _same_backend_tensors(inputs, op_name)
    _check_float_dtypes(inputs, op_name)
    return inputs


def uniform_tensors(values):
    """Whether every value is a Tensor and all their arrays share one type (backend)
    and one dtype: the common case of every op, so a plain loop."""
    first = values[0]
    if not isinstance(first, Tensor):
        return False
    array_type, dtype = type(first.data), first.data.dtype
    for x in values:
        if not isinstance(x, Tensor) or type(x.data) is not array_type or x.data.dtype != dtype:
            return False
    return True


def _same_backend_tensors(inputs, op_name):
    """Inputs as Tensors, all on one backend; never an implicit copy between two."""
    tensors = inputs
    if not all(isinstance(x, Tensor) for x in inputs):
        like = next((x for x in inputs if isinstance(x, Tensor)), None)
        tensors = tuple(x if isinstance(x, Tensor) else as_tensor(x, like=like) for x in inputs)
    backends = {backend_of(t.data).name for t in tensors}
    if len(backends) > 1:
        raise BackendError(
            f"{op_name}: expected all inputs on one backend, got tensors on "
            f"{' and '.join(sorted(backends))}; move them with .to(...) first"
        )
    return tensors


def _check_float_dtypes(inputs, op_name):
    """Refuse float32 mixed with float64: NumPy would silently upcast."""
    floats = {t.dtype for t in inputs if t.dtype.kind == "f"}
    if len(floats) > 1:
        names = " and ".join(sorted(str(dtype) for dtype in floats))
        raise TypeError(
            f"{op_name}: expected inputs of one float dtype, got {names}; "
            "convert one with .astype(...) (minigrad never up- or downcasts silently)"
        )
