"""``minigrad.data``: everything between text and the arrays a model eats (host-side, NumPy).

    vocab       the special tokens <pad> <bos> <eos> <unk> and ``DataError``
    tasks       built-in tasks generated from a seed (dates -> ISO, reverse, sort, copy)
    corpus      tab-separated parallel corpora (Tatoeba/Anki) and the train/valid/test split
    tokenizers  character, word and BPE tokenizers with encode/decode round trips
    batching    padded batches of similar lengths, with lengths and padding masks

    pairs = make_task("dates", 10000, seed=0)
    train, valid, test = split_pairs(pairs, seed=0)
    src_tok = build_tokenizer("char", [s for s, _ in train])
    tgt_tok = build_tokenizer("char", [t for _, t in train])
    for batch in batches(encode_pairs(train, src_tok, tgt_tok), batch_size=64, epoch=0):
        batch.src, batch.tgt_in, batch.tgt_out, batch.src_mask     # (B, S), (B, T), (B, T), (B, S)
"""
from minigrad.data.vocab import (
    BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID, DataError,
)
from minigrad.data.tasks import TASKS, make_task
from minigrad.data.corpus import clean_text, load_tsv, split_pairs
from minigrad.data.tokenizers import (
    BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, build_tokenizer, tokenizer_from_dict,
)
from minigrad.data.batching import Batch, batches, encode_pairs, make_batch
