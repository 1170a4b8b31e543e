"""Activation functions as modules (for ``Sequential``): ReLU, GELU, Tanh, Sigmoid."""
from minigrad.nn.module import Module
from minigrad.ops import gelu, relu, sigmoid, tanh

__all__ = ["ReLU", "GELU", "Tanh", "Sigmoid"]


class ReLU(Module):
    """y = max(x, 0).

    >>> import minigrad as mg
    >>> mg.nn.ReLU()(mg.Tensor([-1.0, 0.0, 2.0])).numpy().tolist()
    [0.0, 0.0, 2.0]
    """

    def forward(self, x):
        return relu(x)


class GELU(Module):
    """y = x Phi(x) (Hendrycks & Gimpel, 2016); ``approximate="tanh"`` for the tanh form.

    >>> import minigrad as mg
    >>> [round(v, 4) for v in mg.nn.GELU()(mg.Tensor([-1.0, 0.0, 1.0])).numpy().tolist()]
    [-0.1587, 0.0, 0.8413]
    >>> round(mg.nn.GELU(approximate="tanh")(mg.Tensor([1.0])).item(), 4)
    0.8412
    """

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)


class Tanh(Module):
    """y = tanh(x).

    >>> import minigrad as mg
    >>> [round(v, 4) for v in mg.nn.Tanh()(mg.Tensor([-1.0, 0.0, 1.0])).numpy().tolist()]
    [-0.7616, 0.0, 0.7616]
    """

    def forward(self, x):
        return tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)).

    >>> import minigrad as mg
    >>> mg.nn.Sigmoid()(mg.Tensor([0.0])).item()
    0.5
    """

    def forward(self, x):
        return sigmoid(x)
