"""``minigrad.data``: everything between text and the arrays a model eats (host-side, NumPy).

    vocab           the special tokens <pad> <bos> <eos> <unk> ([CLS] [SEP] [MASK]), DataError
    tasks           built-in tasks generated from a seed (dates -> ISO, reverse, sort, copy)
    corpus          tab-separated parallel corpora (Tatoeba/Anki) and the train/valid/test split
    tokenizers      character, word and BPE tokenizers with encode/decode round trips
    batching        padded batches of similar lengths, with lengths and padding masks
    text            plain UTF-8 text files and their contiguous train/valid/test split
    python_docs     the built-in text corpus: Python's own documentation, no download
    lm_batching     language-model windows: random (training) and covering (evaluation)
    masking         BERT's masked-LM corruption: 15% of the real tokens, 80/10/10
    sentence_pairs  BERT's next-sentence pairs, packed, padded and masked

    pairs = make_task("dates", 10000, seed=0)
    train, valid, test = split_pairs(pairs, seed=0)
    src_tok = build_tokenizer("char", [s for s, _ in train])
    tgt_tok = build_tokenizer("char", [t for _, t in train])
    for batch in batches(encode_pairs(train, src_tok, tgt_tok), batch_size=64, epoch=0):
        batch.src, batch.tgt_in, batch.tgt_out, batch.src_mask     # (B, S), (B, T), (B, T), (B, S)

    train, valid, test = split_text(builtin_corpus("python-docs"))     # or load_text(path)
    tokenizer = build_tokenizer("char", [train])                         # fitted on train only
    batch = lm_batch(encode_text(train, tokenizer), 12, 64, seed=0, step=step)
    batch.x, batch.y                                                     # (B, T), (B, T)
    bert_tok = build_tokenizer("word", [train], specials=BERT_SPECIALS)
    batch = SentencePairs(train, bert_tok).batch(32, 128, seed=0, step=step)
    batch.tokens, batch.segments, batch.padding_mask, batch.mlm_labels, batch.nsp_labels
"""
from minigrad.data.vocab import (
    BERT_SPECIALS, BOS, BOS_ID, CLS, CLS_ID, EOS, EOS_ID, MASK, MASK_ID, PAD, PAD_ID, SEP, SEP_ID,
    SPECIALS, UNK, UNK_ID, DataError,
)
from minigrad.data.tasks import TASKS, make_task
from minigrad.data.corpus import clean_text, load_tsv, split_pairs
from minigrad.data.tokenizers import (
    BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, build_tokenizer, tokenizer_from_dict,
)
from minigrad.data.batching import Batch, batches, encode_pairs, make_batch
from minigrad.data.text import encode_text, load_text, split_text
from minigrad.data.python_docs import BUILTIN_CORPORA, builtin_corpus
from minigrad.data.lm_batching import LMBatch, lm_batch, lm_eval_batches
from minigrad.data.masking import IGNORE_INDEX, mask_tokens
from minigrad.data.sentence_pairs import (
    IS_NEXT, NOT_NEXT, MLMBatch, SentencePairs, pack_pairs, split_segments, truncate_pair,
)
