"""The ``Function`` base class: one differentiable op, forward and backward.

A subclass writes two methods on backend arrays (never on Tensors):

    forward(*xs)  -> y or (y1, y2, ...)     the op itself
    backward(*gys) -> gx or (gx1, gx2, ...) the vector-Jacobian product:
                      given gy = dL/dy for every output, return dL/dx for every
                      input (``None`` for an input that needs no gradient)

Arrays that backward needs are stored with ``self.save_for_backward(...)`` and
read back as ``self.saved``.

Calling a Function (``Exp()(x)``) runs forward and, when grad mode is on and an
input requires grad, records the call as the ``creator`` of its outputs (each
output also knows its ``output_index``: which output of the call it is). Those
records are the graph that ``Tensor.backward()`` walks.

What the graph holds, and why
-----------------------------
The walk back needs, from each call, only where the gradient of each input
goes, never the input's values: an op saves the values its backward reads
itself. So a call keeps, per input, ``input_edges[i]``:

    _Edge(creator, output_index)  the input is an op's output: its gradient is
                                  added to that output's gradient, which the
                                  walk hands to ``creator``'s backward;
    the Tensor itself             a leaf that requires grad: its gradient ends
                                  in its ``.grad`` (a parameter, alive anyway);
    None                          an input that needs no gradient.

An edge holds no array. Had the graph kept the input Tensors instead, every
activation would live until the walk ended, whether or not a backward needs it:
in ``relu(x @ W + b)`` no backward reads ``x @ W`` or ``x @ W + b`` (Add keeps
nothing, ReLU keeps its output), yet both would stay, in every layer, through
the whole backward pass. With edges, an intermediate Tensor the user dropped is
freed at once unless an op saved its array, and what an op saved goes right
after that op's backward (unless ``retain_graph=True``).
PyTorch's autograd keeps the same: each ``grad_fn`` holds ``next_functions``,
(``grad_fn``, ``output_nr``) pairs and an ``AccumulateGrad`` node per leaf,
plus the tensors saved for backward, and nothing else.
"""
import contextlib

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

    # Set by the engine before each backward: per output, whether its gradient array is
    # the engine's alone (minigrad/autograd.py, "Who owns a gradient"), so that backward
    # may write its result into it instead of a new array (GELU does). Empty when
    # backward is called by hand: then nothing may be written into.
    gy_owned = ()
    # Set by the engine before each backward: whether the saved arrays must outlive this
    # backward (a second walk, retain_graph=True). When not, a backward may let one go as
    # soon as it has used it (``free_saved``), before it makes its next result. True when
    # backward is called by hand.
    retain_saved = True

    def __call__(self, *inputs):
        if autocast_inputs is not None:                # mixed precision (minigrad.amp): cast per op
            inputs = autocast_inputs(self, inputs)
        if not uniform_tensors(inputs):                # the common case passes in one loop
            inputs = _checked_inputs(inputs, type(self).__name__)
        if not _grad_enabled:                          # no_grad(): nothing needs a gradient
            needs, record = (False,) * len(inputs), False
        elif len(inputs) == 2:                         # unrolled, as forward's call below
            needs = (inputs[0].requires_grad, inputs[1].requires_grad)
            record = needs[0] or needs[1]
        else:
            needs = tuple([x.requires_grad for x in inputs])
            record = True in needs
        self.needs_input_grad = needs
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
            # (what forward saved goes with this call object, which nothing references)
            if single:
                return Tensor._from_op(ys, False)
            return tuple([Tensor._from_op(y, False) for y in ys])

        ys = (ys,) if single else ys
        outputs = tuple([Tensor._from_op(y, y.dtype.kind == "f") for y in ys])
        # The graph (the module docstring): where each input's gradient goes, no data.
        self.input_edges = tuple([_Edge(x.creator, x.output_index) if x.creator is not None
                                  else (x if x.requires_grad else None) for x in inputs])
        self.output_meta = [(y.shape, y.dtype) for y in ys]
        self.freed = False
        for k, t in enumerate(outputs):
            if t.requires_grad:
                t.creator, t.output_index = self, k
        return outputs[0] if single else outputs

    # -- what subclasses write -------------------------------------------------
    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    # -- buffers kept for backward --------------------------------------------
    _saved = ()                                        # until forward saves something

    def save_for_backward(self, *arrays):
        """Keep ``arrays`` for backward; the engine drops them right after it."""
        self._saved = arrays

    @property
    def saved(self):
        return self._saved

    def free_saved(self):
        """Drop the saved arrays now, inside backward, unless they must outlive it
        (``retain_saved``); the caller drops its own local names of them too."""
        if not self.retain_saved:
            self._saved = None

    def release(self):
        """Drop the saved arrays and the edges: called by the engine right after this
        call's backward (unless retain_graph=True); a second walk then stops here."""
        self._saved = None
        self.input_edges = None
        self.freed = True

    def __repr__(self):
        return f"<{type(self).__name__}>"


class _Edge:
    """Where the gradient of a non-leaf input goes: output ``output_index`` of the
    call ``creator`` (PyTorch's (grad_fn, output_nr) pair). No array: the graph keeps
    this instead of the input Tensor, so that the input's data (an activation) lives
    only as long as the user or a ``save_for_backward`` keeps it.

    ``shape`` and ``dtype`` are the input's, from what the creator recorded of its
    outputs: the engine checks each gradient against them.
    """
    __slots__ = ("creator", "output_index")

    def __init__(self, creator, output_index):
        self.creator, self.output_index = creator, output_index

    @property
    def shape(self):
        return self.creator.output_meta[self.output_index][0]

    @property
    def dtype(self):
        return self.creator.output_meta[self.output_index][1]


def _checked_inputs(inputs, op_name):
    """Inputs as Tensors, all on one backend and of at most one float dtype: the full
    check, which names what is wrong. ``Function.__call__`` calls it only when
    ``uniform_tensors`` (the common case: Tensors whose arrays share one type and one
    dtype, checked in a single pass, the framework's per-op overhead) says no.
    """
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
    if len(values) == 2:                       # most ops: one comparison, no loop
        x = values[1]
        return isinstance(x, Tensor) and type(x.data) is array_type and x.data.dtype == dtype
    for x in values[1:]:
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
