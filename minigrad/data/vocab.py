"""The special tokens every vocabulary starts with, and the error for bad data.

    id  token   meaning
    0   <pad>   padding after the end of a shorter sequence in a batch
    1   <bos>   beginning of sequence: the decoder's first input
    2   <eos>   end of sequence: the decoder's last target; decoding stops there
    3   <unk>   a symbol the tokenizer never saw while it was fitted
"""

__all__ = ["PAD", "BOS", "EOS", "UNK", "PAD_ID", "BOS_ID", "EOS_ID", "UNK_ID", "SPECIALS",
           "DataError"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = [PAD, BOS, EOS, UNK]


class DataError(ValueError):
    """A problem with the user's data or data options.

    The message names what was expected and what came (``path:line`` for files), so that
    the command line can print it as the one line a user sees.
    """
