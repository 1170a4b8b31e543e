"""``Dropout`` (Srivastava et al., 2014): zero each element with probability p while training."""
from minigrad.nn.module import Module
from minigrad.ops import dropout

__all__ = ["Dropout"]


class Dropout(Module):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p), in training; y = x in eval.

    Shapes: input and output any shape, the same.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
