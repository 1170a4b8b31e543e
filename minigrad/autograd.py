"""Reverse-mode automatic differentiation: the walk over the recorded graph.

Every op output remembers the ``Function`` call that made it (``creator``), and
every call remembers its inputs, so the graph is known once the forward pass has
run. ``backward`` visits the calls from the outputs back to the leaves, each one
after every call that used its outputs, and hands each call the summed gradient
of its outputs (the chain rule; a tensor used twice gets the sum of both paths).

The order is found with an explicit stack, not recursion, so a graph as deep as
a 10,000-step RNN unroll needs no raised recursion limit.
"""
from minigrad.backend import backend_of

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
    grads = {}                                   # id(tensor) -> gradient so far
    roots = []
    for tensor, grad in zip(tensors, grad_tensors):
        if tensor.creator is None:
            _accumulate_leaf(tensor, grad)
        else:
            _add_to(grads, tensor, grad)
            roots.append(tensor.creator)

    order = _topological_order(roots)
    for fn in order:
        if fn.freed:
            raise RuntimeError(
                f"trying to backward through the graph a second time: the buffers "
                f"of {fn!r} were freed by the first backward(). Pass "
                "backward(retain_graph=True) the first time to walk it again."
            )
        gys = []
        for ref, (shape, dtype) in zip(fn.outputs, fn.output_meta):
            output = ref()
            gy = grads.pop(id(output), None) if output is not None else None
            if gy is None:                       # an output that no path used
                xp = backend_of(fn.inputs[0].data).xp
                gy = xp.zeros(shape, dtype=dtype)
            gys.append(gy)

        gxs = fn.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if not retain_graph:
            fn.free_buffers()
        for x, gx in zip(fn.inputs, gxs):
            if gx is None or not x.requires_grad:
                continue
            gx = _as_array(gx, x)
            if gx.shape != x.shape or gx.dtype != x.dtype:
                raise RuntimeError(
                    f"{fn!r}.backward returned a gradient of shape {gx.shape} and dtype "
                    f"{gx.dtype} for an input of shape {x.shape} and dtype {x.dtype}"
                )
            if x.creator is None:
                _accumulate_leaf(x, gx)
            else:
                _add_to(grads, x, gx)

    if not retain_graph:                         # after the walk: it needs every tensor
        for fn in order:
            fn.release_inputs()


def _as_array(grad, like):
    """NumPy turns 0-d results (a 0-d gradient, a sum of two) into scalars: undo that."""
    return grad if grad.ndim else backend_of(like.data).xp.asarray(grad)


def _add_to(grads, tensor, grad):
    key = id(tensor)
    grads[key] = grad if key not in grads else _as_array(grads[key] + grad, tensor)


def _accumulate_leaf(tensor, grad):
    # A copy on first write: the same array may be handed to several inputs
    # (the backward of x + y returns gy twice), and .grad is the user's to edit.
    # Later gradients are added in place, as PyTorch does: no new array per addition
    # (a recurrent weight gets one per time step).
    if tensor.grad is None:
        tensor.grad = _as_array(grad.copy(), tensor)
    elif tensor.grad.shape == grad.shape and tensor.grad.dtype == grad.dtype:
        tensor.grad += grad
    else:
        tensor.grad = _as_array(tensor.grad + grad, tensor)


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
        for x in fn.inputs:
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    return order[::-1]
