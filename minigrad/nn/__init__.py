"""``minigrad.nn``: modules and layers, with PyTorch's names, shapes and defaults.

    module        Module, Parameter, ModuleList, Sequential
    basic         Linear, Embedding, Dropout, LayerNorm, ReLU, GELU, Tanh, Sigmoid
    functional    F.linear, F.scaled_dot_product_attention, and the ops under torch's names
"""
from minigrad.nn import functional, init
from minigrad.nn.parameter import Parameter
from minigrad.nn.module import Module, ModuleList, Sequential, StateDictError
from minigrad.nn.linear import Linear
from minigrad.nn.embedding import Embedding
from minigrad.nn.dropout import Dropout
from minigrad.nn.layer_norm import LayerNorm
from minigrad.nn.activation import GELU, ReLU, Sigmoid, Tanh
from minigrad.nn.multihead_attention import MultiheadAttention
from minigrad.nn.positional_encoding import PositionalEncoding, sinusoidal_positional_encoding
from minigrad.nn.transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
    TransformerEncoderLayer,
)
