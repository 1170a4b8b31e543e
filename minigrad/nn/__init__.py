"""``minigrad.nn``: modules and layers, with PyTorch's names, shapes and defaults.

    module          Module, Parameter, ModuleList, Sequential        module.py, parameter.py
    basic           Linear, Embedding, Dropout, LayerNorm,            linear.py, embedding.py, ...
                    ReLU, GELU, Tanh, Sigmoid
    recurrent       GRUCell, LSTMCell (one step); GRU, LSTM           rnn_cell.py, rnn.py
    seq2seq attn    AdditiveAttention (Bahdanau), LuongAttention      additive_attention.py, ...
    Transformer     scaled dot-product attention, MultiheadAttention, scaled_dot_product.py,
                    PositionalEncoding, Transformer{Encoder,Decoder}  multihead_attention.py,
                    {Layer,}, Transformer                             transformer.py
    losses          CrossEntropyLoss, MSELoss                         loss.py
    functional      F.linear, F.scaled_dot_product_attention, F.mse_loss, and the ops
                    under torch's names
    init            PyTorch's initializations
"""
from minigrad.nn import functional, init
from minigrad.nn.parameter import Parameter
from minigrad.nn.module import Module, ModuleList, Sequential, StateDictError
from minigrad.nn.linear import Linear
from minigrad.nn.embedding import Embedding
from minigrad.nn.dropout import Dropout
from minigrad.nn.layer_norm import LayerNorm
from minigrad.nn.activation import GELU, ReLU, Sigmoid, Tanh
from minigrad.nn.loss import CrossEntropyLoss, MSELoss
from minigrad.nn.rnn_cell import GRUCell, LSTMCell
from minigrad.nn.rnn import GRU, LSTM
from minigrad.nn.additive_attention import AdditiveAttention
from minigrad.nn.luong_attention import LuongAttention
from minigrad.nn.multihead_attention import KVCache, MultiheadAttention
from minigrad.nn.positional_encoding import PositionalEncoding, sinusoidal_positional_encoding
from minigrad.nn.transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
    TransformerEncoderLayer,
)
