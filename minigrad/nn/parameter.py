"""``Parameter``: a Tensor that a ``Module`` owns and an optimizer updates."""
from minigrad.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is registered by the Module
    it is assigned to (``self.weight = Parameter(...)``), as ``torch.nn.Parameter``."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
