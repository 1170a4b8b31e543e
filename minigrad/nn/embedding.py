"""``Embedding``: a lookup table of learned vectors, one row per token."""
from minigrad import creation
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops import embedding

__all__ = ["Embedding"]


class Embedding(Module):
    """y[..., :] = W[indices[...], :].

    >>> import minigrad as mg
    >>> table = mg.nn.Embedding(10, 4, padding_idx=0)
    >>> table(mg.Tensor([[1, 2, 0]])).shape
    (1, 3, 4)
    >>> table.weight.data[0].tolist()                   # the padding row
    [0.0, 0.0, 0.0, 0.0]

    Shapes:
        input  indices: (...) integers in [0, num_embeddings)
        output y:       (..., embedding_dim)
        weight W:       (num_embeddings, embedding_dim), initialized N(0, 1) (PyTorch's)

    ``padding_idx``: that row starts at zero and receives no gradient, so the
    padding token's vector stays zero through training (PyTorch's meaning).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [-{num_embeddings}, "
                                 f"{num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(creation.zeros(num_embeddings, embedding_dim))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices):
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
