"""Activation functions as modules (for ``Sequential``): ReLU, GELU, Tanh, Sigmoid."""
from minigrad.nn.module import Module
from minigrad.ops import gelu, relu, sigmoid, tanh

__all__ = ["ReLU", "GELU", "Tanh", "Sigmoid"]


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x):
        return relu(x)


class GELU(Module):
    """y = x Phi(x) (Hendrycks & Gimpel, 2016); ``approximate="tanh"`` for the tanh form."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, x):
        return tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x))."""

    def forward(self, x):
        return sigmoid(x)
