"""The differentiable ops, by kind. Each is a ``Function`` with forward and backward.

    elementwise   add sub mul div neg pow exp log sqrt abs tanh sigmoid relu gelu
                  maximum minimum where clip astype
    reductions    sum mean max min var logsumexp; argmax argmin (no gradient)
    shape         reshape transpose swapaxes getitem take_along_axis concatenate (cat)
                  stack split broadcast_to expand_dims unsqueeze squeeze flatten pad
                  clone to_backend
    linalg        matmul

The fused neural-net ops (``nn_*``): one forward and one hand-derived backward where
the composed version would build a graph of several ops. Each keeps a composed
oracle, built from the ops above, that the tests hold it equal to:

    module              fused op                  its composed oracle
    nn_linear           linear_fused              minigrad/nn/functional.py  linear_composed
    nn_softmax          softmax, log_softmax      the same file: softmax_composed, log_softmax_composed
    nn_cross_entropy    cross_entropy             the same file: cross_entropy_composed
    nn_embedding        embedding                 the same file: embedding_composed
    nn_dropout          dropout (dropout_mask)    the same file: dropout_composed
    nn_layer_norm       layer_norm                the same file: layer_norm_composed
    nn_gru_step         gru_step_fused            minigrad/nn/rnn_cell.py    gru_step_composed
    nn_lstm_step        lstm_step_fused           minigrad/nn/rnn_cell.py    lstm_step_composed
    nn_gru_sequence     gru_sequence_fused        minigrad/nn/rnn.py  _RNNBase._step_loop (a GRU)
    nn_lstm_sequence    lstm_sequence_fused       minigrad/nn/rnn.py  _RNNBase._step_loop (an LSTM)
    nn_attention        attention_core_fused      minigrad/nn/scaled_dot_product.py  attention_core_composed

The five whose oracle sits in their own file are imported here with it
(``minigrad.ops.layer_norm``, ``minigrad.ops.layer_norm_composed``); the others are
imported by the layers that use them. ``_util`` holds helpers of the ops, not ops.
"""
from minigrad.ops.elementwise import (
    abs, add, astype, clip, div, exp, gelu, log, maximum, minimum, mul, neg, pow,
    relu, sigmoid, sqrt, sub, tanh, where,
)
from minigrad.ops.reductions import argmax, argmin, logsumexp, max, mean, min, sum, var
from minigrad.ops.shape import (
    broadcast_to, cat, clone, concatenate, expand_dims, flatten, getitem, pad, reshape, split,
    squeeze, stack, swapaxes, take_along_axis, to_backend, transpose, unsqueeze,
)
from minigrad.ops.linalg import matmul
from minigrad.ops.nn_softmax import log_softmax, log_softmax_composed, softmax, softmax_composed
from minigrad.ops.nn_cross_entropy import cross_entropy, cross_entropy_composed
from minigrad.ops.nn_embedding import embedding, embedding_composed
from minigrad.ops.nn_dropout import dropout, dropout_composed, dropout_mask
from minigrad.ops.nn_layer_norm import layer_norm, layer_norm_composed
