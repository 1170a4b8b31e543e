"""``Parameter``: a Tensor that a ``Module`` owns and an optimizer updates."""
from minigrad.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is registered by the Module
    it is assigned to (``self.weight = Parameter(...)``), as ``torch.nn.Parameter``.

    >>> import minigrad as mg
    >>> w = mg.nn.Parameter(mg.zeros(2, 3).data)
    >>> w.requires_grad, w.shape
    (True, (2, 3))
    """

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
