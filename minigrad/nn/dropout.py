"""``Dropout`` (Srivastava et al., 2014): zero each element with probability p while training."""
from minigrad.nn.module import Module
from minigrad.ops import dropout

__all__ = ["Dropout"]


class Dropout(Module):
    """y = x * m / (1 - p), m ~ Bernoulli(1 - p), in training; y = x in eval.

    >>> import minigrad as mg
    >>> drop = mg.nn.Dropout(p=0.5)
    >>> set(drop(mg.ones(4, 8)).numpy().ravel().tolist()) <= {0.0, 2.0}    # dropped or 1 / (1 - p)
    True
    >>> drop.eval()(mg.ones(2, 3)).numpy().tolist()                          # eval: the identity
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]

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
