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

The order is found with an explicit stack, not recursion, so a graph as deep as
a 10,000-step RNN unroll needs no raised recursion limit.
"""
from minigrad.backend import asarray, backend_of, is_array
from minigrad.function import _Edge

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
    pending = {}                                 # call -> its outputs' gradients so far
    roots = []
    for tensor, grad in zip(tensors, grad_tensors):
        if tensor.creator is None:
            _accumulate_leaf(tensor, grad)
        else:
            _add_to(pending, tensor.creator, tensor.output_index, grad)
            roots.append(tensor.creator)

    for fn in _topological_order(roots):
        if fn.freed:
            raise RuntimeError(
                f"trying to backward through the graph a second time: the buffers "
                f"of {fn!r} were freed by the first backward(). Pass "
                "backward(retain_graph=True) the first time to walk it again."
            )
        gys = pending.pop(fn, None)
        # Nothing pending: every path to this call returned None (a zero gradient),
        # so it has nothing to pass on, as in PyTorch.
        if gys is not None:
            if len(gys) > 1:                     # a single output's slot is never empty
                _zeros_for_unused(gys, fn.output_meta)
            gxs = fn.backward(*gys)
            _pass_on(fn, gxs if isinstance(gxs, tuple) else (gxs,), pending)
            # Drop this call's gradients now: held until the next iteration rebinds the
            # names, they would sit beside the next call's backward, its peak included.
            del gys, gxs
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
    """Send each input's gradient along its edge: into ``pending``, or a leaf's ``.grad``."""
    for edge, gx in zip(fn.input_edges, gxs):
        if edge is None or gx is None:           # an input that needs no gradient
            continue
        gx = _as_array(gx)
        if gx.shape != edge.shape or gx.dtype != edge.dtype:
            raise RuntimeError(
                f"{fn!r}.backward returned a gradient of shape {gx.shape} and dtype "
                f"{gx.dtype} for an input of shape {edge.shape} and dtype {edge.dtype}"
            )
        if isinstance(edge, _Edge):
            _add_to(pending, edge.creator, edge.output_index, gx)
        else:                                    # a leaf Tensor
            _accumulate_leaf(edge, gx)


def _as_array(grad):
    """NumPy turns 0-d results (a 0-d gradient, a sum of two) into NumPy scalars,
    not arrays: undo that (only NumPy does it; CuPy keeps 0-d arrays)."""
    if grad.ndim or is_array(grad):
        return grad
    return asarray(grad, backend="numpy")


def _add_to(pending, fn, index, grad):
    """Add ``grad`` to the pending gradient of output ``index`` of call ``fn``."""
    gys = pending.get(fn)
    if gys is None:
        gys = pending[fn] = [None] * len(fn.output_meta)
    gys[index] = grad if gys[index] is None else _as_array(gys[index] + grad)


def _accumulate_leaf(tensor, grad):
    # A copy on first write: the same array may be handed to several inputs
    # (the backward of x + y returns gy twice), and .grad is the user's to edit.
    # Later gradients are added in place, as PyTorch does: no new array per addition
    # (a recurrent weight gets one per time step).
    if tensor.grad is None:
        tensor.grad = _as_array(grad.copy())
    elif tensor.grad.shape == grad.shape and tensor.grad.dtype == grad.dtype:
        tensor.grad += grad
    else:
        tensor.grad = _as_array(tensor.grad + grad)


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
