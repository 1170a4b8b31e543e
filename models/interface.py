"""The one interface every sequence-to-sequence model here offers, so that training,
decoding, evaluation and plots are written once for all of them.

    encoded = model.encode(src, src_lengths)        # the source, read once
    state   = model.start(encoded)                  # the decoder before its first step
    logits, state, weights = model.step(encoded, state, tokens)
                                                    # one decoder step: (B, V), new state,
                                                    # attention weights or None
    logits, weights = model(src, src_lengths, tgt_in)
                                                    # teacher forcing: (B, T, V) for all steps
    encoded, state = model.select(encoded, state, index)
                                                    # keep batch rows ``index`` (beam search)

Shapes: src (B, S) int token ids padded with ``pad_id``; src_lengths (B,) ints;
tgt_in (B, T) ints starting with ``bos_id``; tokens (B,) ints.
"""
from minigrad import backend as _backend
from minigrad.tensor import Tensor

__all__ = ["padding_mask", "as_lengths"]


def as_lengths(lengths):
    """``lengths`` (a list, array or Tensor of B ints) as a host list of Python ints."""
    if isinstance(lengths, Tensor):
        lengths = lengths.numpy()
    elif not isinstance(lengths, (list, tuple)):
        lengths = _backend.to_numpy(lengths) if hasattr(lengths, "shape") else lengths
    return [int(n) for n in lengths]


def padding_mask(lengths, S, like):
    """Boolean (B, S) on ``like``'s backend: True at padded positions s >= length."""
    xp = _backend.backend_of(like.data).xp
    positions = xp.arange(S)[None, :]                                      # (1, S)
    lengths = xp.asarray(as_lengths(lengths))[:, None]               # (B, 1)
    return Tensor(positions >= lengths)                                    # (B, S)
