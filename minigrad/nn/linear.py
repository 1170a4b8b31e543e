"""``Linear``: the affine map y = x W^T + b."""
import math

from minigrad import creation
from minigrad.nn import init
from minigrad.nn.functional import linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter

__all__ = ["Linear"]


class Linear(Module):
    """y = x W^T + b.

    >>> import minigrad as mg
    >>> layer = mg.nn.Linear(4, 3)
    >>> layer(mg.randn(2, 5, 4)).shape              # any leading axes
    (2, 5, 3)
    >>> layer.weight.shape, layer.bias.shape
    ((3, 4), (3,))

    Shapes:
        input  x: (..., in_features)
        output y: (..., out_features)
        weight W: (out_features, in_features);  bias b: (out_features,)

    Initialization (PyTorch's): W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)),
    which is ``kaiming_uniform_(W, a=sqrt(5))``.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(creation.zeros(out_features, in_features))
        if bias:
            self.bias = Parameter(creation.zeros(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
