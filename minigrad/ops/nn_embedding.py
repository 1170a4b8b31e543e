"""Embedding lookup: row ``indices`` of a weight matrix, a gradient back by scatter-add.

The fused op is ``Embedding`` (called by ``embedding``); its oracle is
``embedding_composed`` at the end of this file, plain indexing whose gradient the
engine derives (``getitem``'s backward), and tests/test_nn_ops.py holds the two equal.
"""
from minigrad.backend import backend_of, get_array_module
from minigrad.deferred_checks import check_indices
from minigrad.function import Function
from minigrad.tensor import as_tensor

__all__ = ["embedding", "embedding_composed"]


class Embedding(Function):
    """y[..., :] = W[indices[...], :].  W (V, D), indices (...) int -> y (..., D).

    A token that appears k times in a batch has its row read k times, so its
    gradient is the sum of the k upstream gradients: backward scatter-adds.
    The row ``padding_idx`` gets no gradient (it stays what it is, as in PyTorch).
    """

    def __init__(self, padding_idx=None):
        self.padding_idx = padding_idx

    def forward(self, weight, indices):
        self.save_for_backward(indices)
        self.weight_shape = weight.shape
        return weight[indices]                                   # (..., D)

    def backward(self, gy):
        indices, = self.saved
        xp = get_array_module(gy)
        V, D = self.weight_shape
        gW = xp.zeros((V, D), dtype=gy.dtype)
        # dy[n]/dW[v] = 1 where indices[n] = v: add every gy[n] to row indices[n]
        backend_of(gy).scatter_add(gW, indices.reshape(-1), gy.reshape(-1, D))
        if self.padding_idx is not None:
            gW[self.padding_idx] = 0
        return gW, None


def embedding(indices, weight, padding_idx=None):
    """Rows of ``weight`` (V, D) for integer ``indices`` of any shape: (..., D).

    The argument order is PyTorch's ``F.embedding(input, weight)``.
    """
    indices = as_tensor(indices, like=weight)
    V = weight.shape[0]
    if weight.ndim != 2:
        raise ValueError(f"embedding: expected a weight of shape (V, D), got {weight.shape}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer indices, got dtype {indices.dtype}")
    # On a device inside a training step, checked there and read later (minigrad/deferred_checks.py)
    check_indices((indices.data < 0) | (indices.data >= V), IndexError, lambda: (
        f"embedding: indices must be in [0, {V}) for {V} embeddings, got values "
        f"from {int(indices.data.min())} to {int(indices.data.max())}"))
    if padding_idx is not None and not -V <= padding_idx < V:
        raise ValueError(f"embedding: padding_idx must be in [-{V}, {V}), got {padding_idx}")
    padding_idx = padding_idx % V if padding_idx is not None else None
    return Embedding(padding_idx)(weight, indices)


def embedding_composed(indices, weight):
    """The same lookup as indexing, ``weight[indices]``: the test oracle of ``Embedding`` /
    ``embedding`` above (without padding_idx)."""
    return weight[as_tensor(indices, like=weight)]
