"""The differentiable ops, by kind. Each is a ``Function`` with forward and backward.

    elementwise   add sub mul div neg pow exp log sqrt abs tanh sigmoid relu gelu
                  maximum minimum where clip astype
    reductions    sum mean max min var logsumexp; argmax argmin (no gradient)
    shape         reshape transpose swapaxes getitem take_along_axis concatenate (cat)
                  stack split broadcast_to expand_dims unsqueeze squeeze flatten pad
                  clone to_backend
    linalg        matmul
    fused (nn_*)  softmax log_softmax cross_entropy embedding dropout layer_norm,
                  each with a ``*_composed`` reference built from the ops above;
                  gru_step_fused lstm_step_fused (nn_gru_step, nn_lstm_step), whose
                  references are ``minigrad.nn.rnn_cell.*_step_composed``;
                  gru_sequence_fused lstm_sequence_fused (nn_gru_sequence,
                  nn_lstm_sequence: a whole GRU / LSTM direction), whose reference is
                  the per-step loop of ``minigrad.nn.rnn``; and
                  attention_fused (nn_attention: the attention core)
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
