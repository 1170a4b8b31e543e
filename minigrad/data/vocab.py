"""The special tokens every vocabulary starts with, and the error for bad data.

    id  token   meaning
    0   <pad>   padding after the end of a shorter sequence in a batch
    1   <bos>   beginning of sequence: the decoder's first input
    2   <eos>   end of sequence: the decoder's last target; decoding stops there
    3   <unk>   a symbol the tokenizer never saw while it was fitted

A tokenizer for BERT (fitted with ``specials=BERT_SPECIALS``) has three more, right after
those four, so that their ids are the same constants for every tokenizer kind:

    4   [CLS]   the first token of every input; the next-sentence head reads its output
    5   [SEP]   the end of each of the two segments
    6   [MASK]  stands for a token the masked-language model must predict

The symbols learned from text come after the specials: ids ``len(specials)`` .. V - 1.
"""

__all__ = ["PAD", "BOS", "EOS", "UNK", "PAD_ID", "BOS_ID", "EOS_ID", "UNK_ID", "SPECIALS",
           "CLS", "SEP", "MASK", "CLS_ID", "SEP_ID", "MASK_ID", "BERT_SPECIALS", "DataError"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = [PAD, BOS, EOS, UNK]

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
CLS_ID, SEP_ID, MASK_ID = 4, 5, 6
BERT_SPECIALS = SPECIALS + [CLS, SEP, MASK]


class DataError(ValueError):
    """A problem with the user's data or data options.

    The message names what was expected and what came (``path:line`` for files), so that
    the command line can print it as the one line a user sees.
    """
