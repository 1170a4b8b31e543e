"""``LayerNorm`` (Ba, Kiros & Hinton, 2016, "Layer Normalization", arXiv:1607.06450)."""
from minigrad import creation
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops import layer_norm

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """y = (x - mean[x]) / sqrt(Var[x] + eps) * gamma + beta over the trailing
    ``normalized_shape`` axes.

    As PyTorch: Var is the biased variance (divide by N, not N - 1) and eps sits
    inside the square root. gamma (``weight``) starts at 1, beta (``bias``) at 0.

    Shapes:
        input, output: (..., *normalized_shape)
        weight, bias:  normalized_shape

    >>> import minigrad as mg
    >>> norm = mg.nn.LayerNorm(8)
    >>> y = norm(mg.randn(2, 5, 8) * 3 + 1)
    >>> y.shape
    (2, 5, 8)
    >>> bool(abs(y.numpy().mean(axis=-1)).max() < 1e-5)       # each row: mean 0 ...
    True
    >>> bool(abs(y.numpy().std(axis=-1) - 1).max() < 1e-3)    # ... and standard deviation 1
    True
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.ones(self.normalized_shape))
            if bias:
                self.bias = Parameter(creation.zeros(self.normalized_shape))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
