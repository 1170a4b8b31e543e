"""Masked language modelling: BERT learns to fill in masked tokens and to tell whether
a segment follows another, from plain text.

    data      --text FILE or the built-in corpus, cut in three contiguous parts as for
              GPT; a tokenizer with [CLS], [SEP], [MASK] fitted on the training part;
              segments are the text's lines, or its sentences (--segment sentence)
    batches   B pairs [CLS] A [SEP] B [SEP] (B the true next line half the time, a random
              one otherwise), 15% of the real tokens chosen and masked 80/10/10
              (``minigrad.data.masking``), all drawn from (seed, step)
    loss      the masked-LM cross-entropy over the chosen positions + the next-sentence
              cross-entropy over the pairs (Devlin et al., 2018, Appendix A.2)
    metrics   mlm_loss, mlm_accuracy (share of chosen positions predicted right),
              nsp_accuracy; for scale, mlm_unigram_accuracy: the accuracy of always
              guessing the most frequent training token
    best      the weights with the lowest validation loss (mlm_loss + nsp_loss)
    samples   test sentences with their masks filled in (samples.txt), and --fill
"""
import math

import numpy as np

import minigrad as mg
from minigrad import distributed as dist
from minigrad.data import BERT_SPECIALS, MASK, MASK_ID, DataError, SentencePairs, encode_text, pack_pairs
from minigrad.nn import functional as F
from models.bert import BERT, BERTConfig, bert_loss, fill_mask
from models.objectives.text_objective import TextObjective
from models.sharing import shared_out

__all__ = ["MaskedLM"]

SAMPLES = 8


class MaskedLM(TextObjective):
    name = "masked_lm"
    #: curves.png's right panel: (history key, label) pairs, and whether they lie in [0, 1]
    CURVES = ((("valid_mlm_accuracy", "masked-LM accuracy"), ("valid_nsp_accuracy", "next-sentence accuracy"),
               ("valid_mlm_unigram_accuracy", "unigram guess")), True)

    SPECIALS = BERT_SPECIALS

    def _prepare(self, parts):
        c = self.config
        self.pairs = {split: SentencePairs(part, self.tok, unit=c.segment) for split, part in parts.items()}
        for split, pairs in self.pairs.items():
            if pairs.num_anchors < 1:
                raise DataError(f"the {split} text has no two consecutive non-empty lines to make a sentence "
                                "pair of: BERT needs text with several lines")
        self.eval_batches = {split: self.pairs[split].eval_batches(c.batch_size, c.block_size, seed=c.seed)
                             for split in ("valid", "test")}
        counts = np.bincount(encode_text(parts["train"], self.tok), minlength=self.tok.vocab_size)
        counts[:len(BERT_SPECIALS)] = 0
        self.most_frequent = int(counts.argmax())          # the unigram guess, for scale

    def describe(self):
        return (f"{self._source()}: {self.pairs['train'].num_segments:,} training, {self.pairs['valid'].num_segments:,} "
                f"validation and {self.pairs['test'].num_segments:,} test lines ({self.config.tokenizer} tokens, "
                f"vocabulary {self.tok.vocab_size:,})")

    # -- training ------------------------------------------------------------------
    def build_model(self):
        c = self.config
        return BERT(BERTConfig(vocab_size=self.tok.vocab_size, max_positions=c.block_size, n_layer=c.layers,
                               n_head=c.heads, d_model=c.d_model, d_ff=c.ff, dropout=c.dropout))

    def train_batch(self, step):
        return self.pairs["train"].batch(self.config.batch_size, self.config.block_size, self.config.seed, step)

    @staticmethod
    def counts(batch):
        """tokens: real tokens read (throughput); masked: positions of the MLM loss; pairs: NSP examples."""
        return {"tokens": int((~batch.padding_mask).sum()), "masked": batch.num_masked,
                "pairs": len(batch.nsp_labels)}

    def loss(self, model, batch, counts):
        """MLM sum over ``counts["masked"]`` + NSP sum over ``counts["pairs"]``."""
        mlm_logits, nsp_logits, labels, nsp_labels = self._forward(model, batch)
        total, _, _ = bert_loss(mlm_logits, labels, nsp_logits, nsp_labels, mlm_count=max(counts["masked"], 1),
                                nsp_count=counts["pairs"])
        return total

    def _forward(self, model, batch):
        """(mlm_logits (N, V) at the chosen positions, nsp_logits (B, 2), their labels)."""
        chosen = batch.mlm_labels >= 0                                            # (B, T) host
        # flat positions, counted on the host: a boolean mask would cost a read of the device
        mlm_logits, nsp_logits = model(self._device(batch.tokens), self._device(batch.segments),
                                       key_padding_mask=self._device(batch.padding_mask),
                                       mlm_positions=self._device(np.flatnonzero(chosen)))   # (N,)
        return (mlm_logits, nsp_logits, self._device(batch.mlm_labels[chosen]),   # (N, V), (B, 2), (N,)
                self._device(batch.nsp_labels))

    def _device(self, array):
        return super()._device(np.ascontiguousarray(array))

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, model, split):
        """Sums over every batch of the split on the device, read back once."""
        model.eval()
        sums, masked, pairs, unigram = None, 0, 0, 0
        with mg.no_grad():
            for batch in shared_out(self.eval_batches[split]):
                mlm_logits, nsp_logits, labels, nsp_labels = self._forward(model, batch)
                xp = mg.backend.backend_of(mlm_logits.data).xp
                batch_sums = xp.stack([
                    F.cross_entropy(mlm_logits, labels, reduction="sum").data.astype("float64"),
                    (mlm_logits.data.argmax(axis=-1) == labels.data).sum().astype("float64"),
                    F.cross_entropy(nsp_logits, nsp_labels, reduction="sum").data.astype("float64"),
                    (nsp_logits.data.argmax(axis=-1) == nsp_labels.data).sum().astype("float64")])
                sums = batch_sums if sums is None else sums + batch_sums
                masked += batch.num_masked
                pairs += len(batch.nsp_labels)
                unigram += int((batch.mlm_labels == self.most_frequent).sum())
        host = mg.backend.to_numpy(sums) if sums is not None else np.zeros(4)
        mlm_loss, mlm_correct, nsp_loss, nsp_correct, masked, pairs, unigram = dist.all_reduce_sum(
            host.tolist() + [masked, pairs, unigram]).tolist()
        masked, pairs = int(masked), int(pairs)
        mlm_loss, nsp_loss = mlm_loss / max(masked, 1), nsp_loss / pairs
        return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "mlm_perplexity": math.exp(min(mlm_loss, 700.0)),
                "mlm_accuracy": mlm_correct / max(masked, 1), "nsp_loss": nsp_loss, "nsp_accuracy": nsp_correct / pairs,
                "mlm_unigram_accuracy": unigram / max(masked, 1), "masked_tokens": masked, "pairs": pairs}

    @staticmethod
    def score(metrics):
        return -metrics["loss"]

    @staticmethod
    def summary(metrics):
        return [("masked-LM loss", f"{metrics['mlm_loss']:.4f}"),
                ("masked-LM accuracy", f"{metrics['mlm_accuracy']:.4f} (unigram guess: "
                                       f"{metrics['mlm_unigram_accuracy']:.4f})"),
                ("next-sentence accuracy", f"{metrics['nsp_accuracy']:.4f}"),
                ("masked tokens", f"{metrics['masked_tokens']:,}"), ("sentence pairs", f"{metrics['pairs']:,}")]

    @staticmethod
    def valid_line(metrics):
        return (f"masked-LM loss {metrics['mlm_loss']:.4f}, accuracy {metrics['mlm_accuracy']:.4f}; "
                f"next sentence {metrics['nsp_accuracy']:.4f}")

    # -- files ---------------------------------------------------------------------
    def sample_lines(self, model):
        """The first test pairs: the masked input, what was there, what the model fills in."""
        batch = self.eval_batches["test"][0]
        model.eval()
        filled = fill_mask(model, self._device(batch.tokens), MASK_ID, self._device(batch.segments),
                           self._device(batch.padding_mask), top_k=1)
        guesses = {(int(b), int(t)): int(ids[0]) for (b, t), ids in zip(filled.positions, filled.ids)}
        lines = []
        for b in range(min(SAMPLES, len(batch.nsp_labels))):
            length = int((~batch.padding_mask[b]).sum())
            chosen = [t for t in range(length) if batch.mlm_labels[b, t] >= 0]
            masked = self.tok.pieces(batch.tokens[b, :length].tolist())
            truth = [f"{self.tok.pieces([int(batch.mlm_labels[b, t])])[0]}" for t in chosen]
            guess = [self.tok.pieces([guesses[(b, t)]])[0] if (b, t) in guesses else "?" for t in chosen]
            lines.append(f"input:     {' '.join(masked)}\nchosen:    {' | '.join(truth)}\n"
                         f"predicted: {' | '.join(guess)}\n")
        return "\n".join(lines) + "\n(predictions shown where the input was [MASK]; '?' where the chosen token " \
                                  "was replaced by a random one or kept)\n"

    # -- using a saved run ---------------------------------------------------------
    def use(self, model, lines, options):
        """``--fill``: each [MASK] of each line replaced by the model's best guess, the
        five best with their probabilities after it."""
        outputs = []
        for number, line in enumerate(lines, start=1):
            ids = self.tok.encode(line)
            if MASK_ID not in ids:
                raise DataError(f"line {number} has no {MASK} to fill: {line!r}")
            if len(ids) + 2 > self.config.block_size:
                raise DataError(f"line {number} has {len(ids)} tokens; this BERT reads at most "
                                f"{self.config.block_size - 2} (its --block-size minus [CLS] and [SEP])")
            tokens, segments, padding = pack_pairs([ids], max_len=self.config.block_size)
            filled = fill_mask(model, self._device(tokens), MASK_ID, self._device(segments), self._device(padding),
                               top_k=5)
            best = list(ids)
            choices = []
            for (_, t), top, probs in zip(filled.positions, filled.ids, filled.probs):
                best[int(t) - 1] = int(top[0])                     # position t - 1 of the text ([CLS] first)
                words = self.tok.pieces(top.tolist())
                choices.append(", ".join(f"{w!r} {p:.2f}" for w, p in zip(words, probs.tolist())))
            outputs.append(self.tok.decode(best) + "    (" + "; ".join(choices) + ")")
        return outputs
