"""Evaluation of a sequence-to-sequence model on a split.

    loss            mean cross-entropy per target token (teacher forcing)
    perplexity      exp(loss)
    token_accuracy  share of target tokens whose teacher-forced argmax is right
    exact_match     share of sentences whose decoded output equals the target (both as
                    the model reads them: cleaned, punctuation split off when it was)
    bleu            corpus BLEU of the decoded outputs (Papineni et al., 2002), by
                    sacrebleu with its standard 13a tokenization (Post, 2018), on
                    detokenized outputs against the references as written;
                    ``bleu_signature`` says exactly which BLEU it is
"""
import math

import sacrebleu

import minigrad as mg
from minigrad import distributed as dist
from minigrad.data import EOS_ID, BOS_ID, PAD_ID
from minigrad.nn import functional as F
from models.decoding import beam_search, greedy_decode
from models.sharing import shared_out

__all__ = ["teacher_forced_metrics", "decode_limit", "decode_texts", "evaluate"]


def to_device(batch, backend):
    """The batch's NumPy arrays as Tensors on ``backend``."""
    b = mg.backend.backend_by_name(backend)
    return (mg.Tensor(b.from_numpy(batch.src)), batch.src_lengths.tolist(),
            mg.Tensor(b.from_numpy(batch.tgt_in)), mg.Tensor(b.from_numpy(batch.tgt_out)))


def teacher_forced_sums(model, batches, backend):
    """[summed loss, correct tokens, tokens] over ``batches``, summed on the device and
    read back once (float64, so that shards of a split add up exactly)."""
    xp = mg.backend.backend_by_name(backend).xp
    sums = xp.zeros(3, dtype="float64")
    with mg.no_grad():
        for batch in batches:
            src, lengths, tgt_in, tgt_out = to_device(batch, backend)
            logits, _ = model(src, lengths, tgt_in)                            # (B, T, V)
            V = logits.shape[-1]
            loss = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD_ID,
                                   reduction="sum")
            real = tgt_out.data != PAD_ID                                      # (B, T)
            correct = ((logits.data.argmax(axis=-1) == tgt_out.data) & real).sum()
            sums += xp.stack([loss.data.astype("float64"), correct.astype("float64"),
                              xp.asarray(float(batch.num_tokens))])
    return mg.backend.to_numpy(sums)


def teacher_forced_metrics(model, batches, backend):
    """loss, perplexity and token accuracy over ``batches``, shared out among the ranks
    of a data-parallel job (``models.objectives.shared_out``) and summed over them."""
    loss_sum, correct, tokens = dist.all_reduce_sum(teacher_forced_sums(model, shared_out(batches), backend))
    loss = loss_sum / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "token_accuracy": correct / max(tokens, 1)}


def decode_limit(source_length, max_positions=None):
    """The most tokens to generate for a source: twice its length and 10 more, but
    never past the model's position table (``max_positions``, Transformers)."""
    limit = 2 * source_length + 10
    return min(limit, max_positions - 1) if max_positions else limit


def decode_texts(model, batches, tgt_tokenizer, backend, beam_size=1, alpha=0.6, max_positions=None):
    """Decoded strings for every example, in batch order."""
    texts = []
    for batch in batches:
        src, lengths, _, _ = to_device(batch, backend)
        limit = decode_limit(int(batch.src_lengths.max()), max_positions)
        if beam_size > 1:
            out = beam_search(model, src, lengths, BOS_ID, EOS_ID, beam_size=beam_size, max_len=limit,
                              alpha=alpha)
        else:
            out = greedy_decode(model, src, lengths, BOS_ID, EOS_ID, max_len=limit)
        texts.extend(tgt_tokenizer.decode(tokens) for tokens in out.tokens)
    return texts


def evaluate(model, batches, targets, references, tgt_tokenizer, backend, beam_size=1, alpha=0.6,
             max_positions=None, detokenize=None, lowercase=False):
    """Every metric of the module docstring, and the hypotheses (for samples.txt).

    ``targets``: the target texts as the model learned them (cleaned: the exact match
    compares the decoded outputs with these); ``references``: the targets as written
    (BLEU compares the detokenized outputs with these, sacreBLEU's way).
    ``detokenize``: a function applied to each decoded output for BLEU and samples (a
    corpus whose punctuation was split off for training gets it joined back);
    ``lowercase``: BLEU ignores case (the model was trained on lower-cased text, the
    references are as written): sacreBLEU's ``case:lc``.
    """
    model.eval()
    metrics = teacher_forced_metrics(model, batches, backend)
    mine = decode_texts(model, shared_out(batches), tgt_tokenizer, backend, beam_size, alpha, max_positions)
    decoded = [text for share in dist.all_gather_object(mine) for text in share]        # in batch order
    metrics["exact_match"] = sum(h == t for h, t in zip(decoded, targets)) / max(len(targets), 1)
    hypotheses = [detokenize(h) for h in decoded] if detokenize is not None else decoded
    bleu = sacrebleu.metrics.BLEU(lowercase=lowercase)
    metrics["bleu"] = bleu.corpus_score(hypotheses, [references]).score
    metrics["bleu_signature"] = str(bleu.get_signature())
    return metrics, hypotheses
