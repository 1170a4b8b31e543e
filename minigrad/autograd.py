"""Reverse-mode automatic differentiation: the walk over the recorded graph.

Every op output remembers the ``Function`` call that made it (``creator``) and
which of its outputs it is (``output_index``); every call remembers, per input,
the edge its gradient goes back along (minigrad/function.py: an ``_Edge`` to the
call that made the input, the leaf Tensor itself, or None). So the graph is
known once the forward pass has run, and it holds no activation: only the
arrays the ops saved for backward.

``backward`` visits the calls from the outputs back to the leaves, each one
after every call that used its outputs, and hands each call the summed gradient
of each of its outputs (the chain rule; an output used twice gets the sum of
both paths). The gradients wait in ``pending``, a list per call with one slot per
output (PyTorch's ``InputBuffer``), until their call's turn: an edge (call,
output index) names the list and the slot. A leaf's gradient goes into its
``.grad``.
Right after a call's backward, its saved arrays and edges are dropped (unless
``retain_graph=True``), so memory falls as the walk goes.

Who owns a gradient. A backward may hand back an array that something else also
holds: its own gy (the backward of x + y returns gy twice), an array it saved, a
view of either. Such an array must be copied before it becomes a leaf's ``.grad``
(the user's to edit) and never be written into. A gradient that nothing but the
engine holds needs no copy: it becomes the ``.grad`` itself, a second gradient for
the same output is added into it in place, and an op may write its own gradient
into it (``Function.gy_owned``): each saves an array of its size. PyTorch decides
the same way, by the tensor's use count (``AccumulateGrad``). Here the count is
Python's reference count, read in ``_owned`` when a backward hands the array back;
what a count means depends on the interpreter (Python 3.14 lends references that
it does not count), so the count of an array only the engine holds is measured
once, by walking a probe graph through the same functions (``_calibrate``).

The order is found with an explicit stack, not recursion, so a graph as deep as
a 10,000-step RNN unroll needs no raised recursion limit.
"""
import sys
import threading

from minigrad.backend import asarray, backend_of, is_array
from minigrad.function import Function, _Edge, enable_grad

__all__ = ["backward"]


def backward(tensors, grad_tensors, retain_graph=False):
    """Accumulate d(sum_k <grad_k, tensor_k>)/dx into ``x.grad`` for every leaf x.

    Args:
        tensors:       the outputs to differentiate (Tensors that require grad).
        grad_tensors:  one backend array per output, of its shape: the gradient
                       arriving from above (``dL/dy``).
        retain_graph:  keep the buffers saved for backward, so the graph can be
                       walked again; by default each call's buffers are freed as
                       soon as its backward has run.
    """
    if _counts is None:
        _calibrate()
    pending = {}                   # call -> (its outputs' gradients so far, which the engine owns)
    roots = []
    for tensor, grad in zip(tensors, grad_tensors):    # the caller's arrays: never owned
        if tensor.creator is None:
            _accumulate_leaf(tensor, grad, False)
        else:
            _add_to(pending, tensor.creator, tensor.output_index, grad, False)
            roots.append(tensor.creator)

    for fn in _topological_order(roots):
        if fn.freed:
            raise RuntimeError(
                f"trying to backward through the graph a second time: the buffers "
                f"of {fn!r} were freed by the first backward(). Pass "
                "backward(retain_graph=True) the first time to walk it again."
            )
        gys, owned = pending.pop(fn, (None, None))
        # Nothing pending: every path to this call returned None (a zero gradient),
        # so it has nothing to pass on, as in PyTorch.
        if gys is not None:
            if len(gys) > 1:                     # a single output's slot is never empty
                _zeros_for_unused(gys, fn.output_meta)
            fn.gy_owned, fn.retain_saved = owned, retain_graph
            try:
                gxs = fn.backward(*gys)
            finally:                             # for this call only: by hand, as the defaults say
                fn.gy_owned, fn.retain_saved = (), True
            # One new tuple holds every gradient (``_owned``): not the one backward handed
            # back, which it may also keep (its ``self.saved``), a holder no count sees
            gxs = (*gxs,) if isinstance(gxs, tuple) else (gxs,)
            # Drop this call's gradients before passing its own on: one that backward
            # returned, or a view of it, is then held by the engine alone (``_owned``),
            # and none sits beside the next call's backward, its peak included.
            del gys
            _pass_on(fn, gxs, pending)
            del gxs
        if not retain_graph:
            fn.release()


def _zeros_for_unused(gys, output_meta):
    """A zero gradient in each slot of an output that no path used (on the backend of
    the others: one slot at least holds a gradient)."""
    xp = backend_of(next(gy for gy in gys if gy is not None)).xp
    for k, (shape, dtype) in enumerate(output_meta):
        if gys[k] is None:
            gys[k] = xp.zeros(shape, dtype=dtype)


def _pass_on(fn, gxs, pending):
    """Send each input's gradient along its edge: into ``pending``, or a leaf's ``.grad``.
    ``gxs`` is a tuple: the references to each array are then the same for every op,
    which ``_owned`` relies on."""
    for edge, gx in zip(fn.input_edges, gxs):
        if edge is None or gx is None:           # an input that needs no gradient
            continue
        gx = _as_array(gx)
        if gx.shape != edge.shape or gx.dtype != edge.dtype:
            raise RuntimeError(
                f"{fn!r}.backward returned a gradient of shape {gx.shape} and dtype "
                f"{gx.dtype} for an input of shape {edge.shape} and dtype {edge.dtype}"
            )
        owned = _owned(gx)                       # on its own line: one count for both uses
        if isinstance(edge, _Edge):
            _add_to(pending, edge.creator, edge.output_index, gx, owned)
        else:                                    # a leaf Tensor
            _accumulate_leaf(edge, gx, owned)


def _as_array(grad):
    """NumPy turns 0-d results (a 0-d gradient, a sum of two) into NumPy scalars,
    not arrays: undo that (only NumPy does it; CuPy keeps 0-d arrays)."""
    if grad.ndim or is_array(grad):
        return grad
    return asarray(grad, backend="numpy")


def _add_to(pending, fn, index, grad, owned):
    """Add ``grad`` to the pending gradient of output ``index`` of call ``fn``;
    ``owned``: whether the engine alone holds ``grad``."""
    if fn not in pending:
        n = len(fn.output_meta)
        pending[fn] = ([None] * n, [False] * n)
    gys, gys_owned = pending[fn]
    pending_grad = gys[index]
    if pending_grad is None:
        gys[index], gys_owned[index] = grad, owned
    elif pending_grad.shape != grad.shape or pending_grad.dtype != grad.dtype:
        gys[index], gys_owned[index] = _as_array(pending_grad + grad), True
    # A sum into an array the engine owns, in place: no third array of the output's
    # size beside the two (a residual stream gets one sum per layer).
    elif gys_owned[index]:
        pending_grad += grad
    elif owned:
        grad += pending_grad
        gys[index], gys_owned[index] = grad, True
    else:
        gys[index], gys_owned[index] = _as_array(pending_grad + grad), True


def _accumulate_leaf(tensor, grad, owned):
    # The first gradient becomes .grad: itself where the engine alone holds it (a
    # weight's gradient from its product: no copy of every weight, at the end of the
    # walk where memory peaks), else a copy (the same array may go to several inputs,
    # and .grad is the user's to edit). Later gradients are added in place, as
    # PyTorch does: no new array per addition (a recurrent weight gets one per step).
    if tensor.grad is None:
        tensor.grad = grad if owned else _as_array(grad.copy())
    elif tensor.grad.shape == grad.shape and tensor.grad.dtype == grad.dtype:
        tensor.grad += grad
    else:
        tensor.grad = _as_array(tensor.grad + grad)


# -- who owns a gradient (the module docstring) ------------------------------------------

# The reference counts ``_owned`` reads for an array only the engine holds, and for
# the base of such an array's view of the whole buffer (a reshape): (array, base);
# None before ``_calibrate``, False where the counts mean nothing (nothing owned then).
_counts = None
_probe_counts = None                             # a list while _calibrate records
_probe_thread = None                             # the thread that records (others own nothing)
_keeps_identity = {}                             # array type -> asarray(a) is a


def _owned(gx):
    """Whether the engine alone holds ``gx``, a gradient a backward just handed back, and
    may keep it or write into it: nothing else references it or its memory (its base,
    where it is a view of a whole buffer), and it is C-contiguous and writeable."""
    base = gx.base
    counts = (sys.getrefcount(gx), None if base is None else sys.getrefcount(base))
    if _probe_counts is not None and threading.get_ident() == _probe_thread:
        _probe_counts.append(counts)             # _calibrate's walk: record, keep nothing
        return False
    if not _counts or counts[0] > _counts[0] or not _keeps_own_identity(gx):
        return False
    flags = gx.flags
    if not flags.c_contiguous or not getattr(flags, "writeable", True):   # CuPy: always writeable
        return False
    # a base that is no array of its kind (a bytearray, a PyTorch tensor, a DLPack
    # capsule) has holders that no count here sees
    return base is None or (type(base) is type(gx) and base.base is None and base.nbytes == gx.nbytes
                            and counts[1] <= _counts[1])


def _keeps_own_identity(array):
    """Whether the array's backend hands an array back as itself (``asarray(a) is a``,
    NumPy's and CuPy's arrays): where it wraps the same memory in a new object (the test
    suite's strict backend), an object's reference count does not count the holders of
    its memory, and nothing is taken as owned."""
    kind = type(array)
    if kind not in _keeps_identity:
        _keeps_identity[kind] = backend_of(array).xp.asarray(array) is array
    return _keeps_identity[kind]


class _OwnershipProbe(Function):
    """(a, b, c) -> a: a backward that hands back, as the gradients of a, b and c, a new
    array, a view of a whole new array, and an array it also keeps (one reference more)."""

    def forward(self, a, b, c):
        return a.copy()

    def backward(self, gy):
        xp = backend_of(gy).xp
        self.kept = xp.zeros(gy.shape, dtype=gy.dtype)
        return (xp.zeros(gy.shape, dtype=gy.dtype),
                xp.zeros(gy.shape + (1,), dtype=gy.dtype).reshape(gy.shape), self.kept)


def _calibrate():
    """Measure the counts ``_owned`` reads for an array the engine alone holds, by one
    walk of a probe graph through the same functions. The array the probe also keeps
    must count exactly one more; where it does not, the counts say nothing reliable,
    and every first gradient is copied, as before."""
    global _counts, _probe_counts, _probe_thread
    import numpy
    from minigrad.tensor import Tensor
    leaves = [Tensor(numpy.zeros(2), requires_grad=True) for _ in range(3)]
    with enable_grad():                          # the first backward may run inside no_grad()
        y = _OwnershipProbe()(*leaves)
    # The probe's walk: this thread records, and no backward owns anything meanwhile
    # (another thread's walk sees _counts False, and copies)
    _counts, _probe_counts, _probe_thread = False, [], threading.get_ident()
    try:
        backward([y], [numpy.ones(2)])
        (new, _), (view, view_base), (kept, _) = _probe_counts
    finally:
        _probe_counts = None
    _counts = (new, view_base) if view == new and kept == new + 1 else False


def _topological_order(roots):
    """The Functions reachable from ``roots``, each before the ones that made its inputs."""
    order = []                                   # post-order: inputs' creators first
    visited = set()
    stack = [(fn, False) for fn in roots]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        if fn.freed:                             # backward() reports it; nothing beyond
            continue
        for edge in fn.input_edges:
            if isinstance(edge, _Edge) and id(edge.creator) not in visited:
                stack.append((edge.creator, False))
    return order[::-1]
