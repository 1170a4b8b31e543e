"""Translation: a sequence-to-sequence model learns P(target | source) from pairs.

    data      a built-in task generated from the seed (``--task``), or a tab-separated
              corpus (``--data``), cleaned, length-filtered and split by the seed;
              tokenizers are fitted on the training pairs alone
    batches   pairs of similar length, padded (``minigrad.data.batching``); epoch e's
              order comes from (seed, e), and training step s is batch s mod n of epoch
              s div n (n batches an epoch): a function of the seed and the step alone
    loss      the cross-entropy of every target token under teacher forcing, label
              smoothing optional
    metrics   loss, perplexity, token accuracy (teacher forced); exact match and BLEU
              of the decoded outputs (greedy, or beam search at the test)
    best      the weights with the best validation exact match (ties: token accuracy)
"""
import hashlib
import os
import sys

import numpy as np

import minigrad as mg
from minigrad.data import (
    BOS_ID, EOS_ID, PAD_ID, UNK_ID, DataError, batches, build_tokenizer, clean_text, encode_pairs, make_task,
    split_pairs, tokenizer_from_dict,
)
from minigrad.data.corpus import detokenize, load_corpus
from minigrad.data.tasks import task_capacity
from minigrad.nn import functional as F
from models.config import tokenizer_options
from models.decoding import beam_search, greedy_decode
from models.evaluation import decode_limit, evaluate, to_device
from models.objectives.objective import Objective
from models.seq2seq import RNNSeq2Seq
from models.transformer import TransformerSeq2Seq

__all__ = ["Translation"]

#: Host memory one generated pair costs while it is held as text, ids and batches
#: (measured: ~0.6 KB for the date task); a request that cannot fit is refused.
BYTES_PER_PAIR = 1024

#: Test pairs written to samples.txt.
SAMPLES = 100


class Translation(Objective):
    name = "translation"
    #: curves.png's right panel: (history key, label) pairs, and whether they lie in [0, 1]
    CURVES = ((("valid_token_accuracy", "token accuracy"), ("valid_exact_match", "exact match")), True)

    def __init__(self, config, tokenizers=None, load_data=True):
        self.config = config
        self.src_tok = self.tgt_tok = None
        if tokenizers is not None:
            self.src_tok, self.tgt_tok = (tokenizer_from_dict(tokenizers[k]) for k in ("source", "target"))
        self.hypotheses = {}
        if load_data:
            self._load_data()

    # -- data --------------------------------------------------------------------
    def _load_data(self):
        c = self.config
        if c.data:
            corpus = load_corpus(c.data, normalize=None if c.normalize == "none" else c.normalize,
                                 lowercase=c.lowercase, split_punctuation=c.split_punctuation,
                                 min_length=c.min_length, max_length=c.max_length)
            examples = [(s, t, raw) for (s, t), raw in zip(corpus.pairs, corpus.raw_targets)]
            self.dropped = corpus.dropped
        else:
            if c.num_pairs >= 100_000:
                print(f"generating {c.num_pairs:,} pairs of --task {c.task} ...", flush=True)
            examples = [(s, t, t) for s, t in make_task(c.task, c.num_pairs, seed=c.seed)]
            self.dropped = 0
        train, valid, test = split_pairs(examples, valid=c.valid_share, test=c.test_share, seed=c.seed)
        self.pairs = {"train": [(s, t) for s, t, _ in train], "valid": [(s, t) for s, t, _ in valid],
                      "test": [(s, t) for s, t, _ in test]}
        self.references = {"valid": [r for _, _, r in valid], "test": [r for _, _, r in test]}
        if self.src_tok is None:
            options = tokenizer_options(c)
            self.src_tok = build_tokenizer(c.tokenizer, [s for s, _ in self.pairs["train"]], **options)
            self.tgt_tok = build_tokenizer(c.tokenizer, [t for _, t in self.pairs["train"]], **options)
        self.encoded = {split: encode_pairs(pairs, self.src_tok, self.tgt_tok)
                        for split, pairs in self.pairs.items()}
        for split, encoded in self.encoded.items():        # before the first step, not after an epoch
            self._check_lengths(split, encoded)
        self.eval_batches = {split: batches(self.encoded[split], c.batch_size, shuffle=False)
                             for split in ("valid", "test")}
        self.steps_per_epoch = len(batches(self.encoded["train"], c.batch_size, seed=c.seed, epoch=0))
        self._epoch, self._epoch_batches = None, None

    def _check_lengths(self, split, encoded):
        """Every sequence of every split must fit the Transformer's position table."""
        limit = self.max_positions()
        if limit is None or not encoded:
            return
        longest = max(max(len(s), len(t) + 1) for s, t in encoded)      # + <bos> or <eos>
        if longest > limit:
            raise DataError(f"a {split} sequence has {longest} tokens, more than --max-positions {limit}: "
                            "raise --max-positions, lower --max-length, or use a coarser --tokenizer")

    @staticmethod
    def check_memory(config):
        """A built-in task of --num-pairs pairs must fit in memory (train.py asks first)."""
        if not config.data:
            _check_fits_in_memory(config.task, config.num_pairs)

    def fingerprint(self):
        """The SHA-256 of the --data file (None for a task: generated from the seed)."""
        if not self.config.data:
            return None
        digest = hashlib.sha256()
        with open(self.config.data, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def max_positions(self):
        """The Transformer's position table bounds its sequences; RNNs have no bound."""
        return self.config.max_positions if self.config.model == "transformer" else None

    def tokenizers(self):
        return {"source": self.src_tok.to_dict(), "target": self.tgt_tok.to_dict()}

    def describe(self):
        dropped = (f" ({self.dropped:,} pairs outside the length range [{self.config.min_length}, "
                   f"{self.config.max_length}] dropped)" if self.dropped else "")
        return (f"{len(self.pairs['train']):,} training, {len(self.pairs['valid']):,} validation and "
                f"{len(self.pairs['test']):,} test pairs{dropped}; {self.steps_per_epoch} steps per epoch")

    # -- training ------------------------------------------------------------------
    def total_steps(self):
        total = self.steps_per_epoch * self.config.epochs
        return min(total, self.config.max_steps) if self.config.max_steps else total

    def is_eval_point(self, step):
        """Validate at the end of every epoch, and every --eval-every steps if set."""
        every = self.config.eval_every
        return step % self.steps_per_epoch == 0 or bool(every and step % every == 0)

    def epoch_of(self, step):
        return step // self.steps_per_epoch

    def build_model(self):
        c = self.config
        V_src, V_tgt = self.src_tok.vocab_size, self.tgt_tok.vocab_size
        if c.model == "transformer":
            return TransformerSeq2Seq(
                V_src, V_tgt, d_model=c.d_model, nhead=c.heads, num_encoder_layers=c.layers,
                num_decoder_layers=c.layers, dim_feedforward=c.ff, dropout=c.dropout, norm_first=c.pre_norm,
                tie_embeddings=c.tie_embeddings, pad_id=PAD_ID, max_len=c.max_positions)
        return RNNSeq2Seq(
            V_src, V_tgt, embed_dim=c.embed_dim, hidden_size=c.hidden, num_layers=c.layers, cell=c.model,
            attention=c.attention, bidirectional=c.bidirectional, dropout=c.dropout,
            teacher_forcing=c.teacher_forcing, input_feeding=not c.no_input_feeding, pad_id=PAD_ID)

    def train_batch(self, step):
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch_batches = batches(self.encoded["train"], self.config.batch_size, seed=self.config.seed,
                                          epoch=epoch)
            self._epoch = epoch
        return self._epoch_batches[index]

    def counts(self, batch):
        return {"tokens": batch.num_tokens}

    def loss(self, model, batch, counts):
        """Mean cross-entropy per target token: the batch's sum over ``counts["tokens"]``."""
        src, lengths, tgt_in, tgt_out = to_device(batch, self.config.backend)
        logits, _ = model(src, lengths, tgt_in)                                   # (B, T, V)
        V = logits.shape[-1]
        total = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD_ID,
                                label_smoothing=self.config.label_smoothing, reduction="sum")
        return total / counts["tokens"]

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, model, split, beam_size=None):
        c = self.config
        beam = c.beam_size if split == "test" and beam_size is None else (beam_size or 1)
        beam = min(beam, self.tgt_tok.vocab_size)
        metrics, hypotheses = evaluate(
            model, self.eval_batches[split], [t for _, t in self.pairs[split]], self.references[split], self.tgt_tok,
            c.backend, beam, c.length_penalty, self.max_positions(), detokenize=self._detokenize, lowercase=c.lowercase)
        self.hypotheses[split] = hypotheses
        if split == "test":
            metrics.update(beam_size=beam, length_penalty=c.length_penalty if beam > 1 else None,
                           test_pairs=len(self.pairs["test"]))
        return metrics

    @staticmethod
    def score(metrics):
        return metrics["exact_match"] + 1e-3 * metrics["token_accuracy"]

    @staticmethod
    def summary(metrics):
        return [("exact match", f"{metrics['exact_match']:.4f}"), ("BLEU", f"{metrics['bleu']:.2f}"),
                ("token accuracy", f"{metrics['token_accuracy']:.4f}"), ("loss", f"{metrics['loss']:.4f}"),
                ("perplexity", _number(metrics["perplexity"]))]

    @staticmethod
    def valid_line(metrics):
        return (f"loss {metrics['loss']:.4f}, token accuracy {metrics['token_accuracy']:.4f}, "
                f"exact match {metrics['exact_match']:.4f}, BLEU {metrics['bleu']:.2f}")

    def _detokenize(self, text):
        return detokenize(text) if self.config.split_punctuation else text

    # -- files -----------------------------------------------------------------------
    def sample_lines(self, model):
        """source / reference / hypothesis of the first test pairs (after ``evaluate("test")``)."""
        hypotheses = (self.hypotheses.get("test")
                      or self.translate(model, [s for s, _ in self.pairs["test"][:SAMPLES]]))
        lines = []
        for (src, tgt), ref, hyp in list(zip(self.pairs["test"], self.references["test"], hypotheses))[:SAMPLES]:
            mark = "" if hyp == self._detokenize(tgt) else "   <- differs"          # the exact-match test
            lines.append(f"source:     {self._detokenize(src)}\nreference:  {ref}\nhypothesis: {hyp}{mark}\n")
        return "\n".join(lines)

    def plots(self, model, out):
        """attention_<i>.png for three test sentences: RNN models one map; the
        Transformer, the heads of its last layer and head 0 of its first."""
        from models.plots import plot_attention
        is_transformer = hasattr(model, "keep_attention")
        model.eval()
        for i, (src_text, _) in enumerate(self.pairs["test"][:3]):
            ids = self.src_tok.encode(src_text)
            src = _ids_tensor([ids], self.config.backend)
            out_hyp = greedy_decode(model, src, [len(ids)], BOS_ID, EOS_ID,
                                    max_len=decode_limit(len(ids), self.max_positions()), keep_attention=True)
            steps = out_hyp.attention_weights[0] if out_hyp.attention_weights else None
            if not steps:
                continue
            out_tokens = self.tgt_tok.pieces(out_hyp.tokens[0]) + ["<eos>"]
            steps = steps[:len(out_tokens)]
            out_tokens = out_tokens[:len(steps)]
            if is_transformer:
                layers, heads = len(steps[0]), steps[0][0].shape[0]
                chosen = [(layers - 1, h) for h in range(heads)] + ([(0, 0)] if layers > 1 else [])
                maps = [np.stack([step[layer][head] for step in steps]) for layer, head in chosen]
                titles = [f"layer {layer + 1}, head {head + 1}" for layer, head in chosen]
            else:
                maps, titles = [np.stack(steps)], [f"{model.attention_kind} attention"]
            plot_attention(self.src_tok.pieces(ids), out_tokens, maps, titles,
                           os.path.join(out, f"attention_{i}.png"))

    # -- using a saved run -------------------------------------------------------
    def use(self, model, lines, options):
        """``--translate``: each line translated, in batches of --batch-size, with the
        run's --beam-size and --length-penalty (or the ones typed with --translate)."""
        return self.translate(model, lines, self.config.beam_size, self.config.length_penalty)

    def translate(self, model, texts, beam_size=1, alpha=0.6):
        c = self.config
        if c.data:                                    # the cleaning the training corpus had
            texts = [clean_text(t, None if c.normalize == "none" else c.normalize, c.lowercase,
                                c.split_punctuation) for t in texts]
        encoded = [self.src_tok.encode(t) for t in texts]
        self._warn_unknown(texts, encoded)
        limit = self.max_positions()
        for number, ids in enumerate(encoded, start=1):
            if not ids:
                raise DataError(f"line {number}: the text {texts[number - 1]!r} has no tokens")
            if limit is not None and len(ids) > limit:
                raise DataError(f"line {number} has {len(ids)} tokens, more than the {limit} positions this "
                                "Transformer was trained with (--max-positions): split it into shorter sentences")
        beam_size = min(beam_size, self.tgt_tok.vocab_size)
        model.eval()
        outputs = []
        for start in range(0, len(encoded), c.batch_size):
            chunk = encoded[start:start + c.batch_size]
            lengths = [len(ids) for ids in chunk]
            src = np.full((len(chunk), max(lengths)), PAD_ID, dtype=np.int64)      # (B, S)
            for b, ids in enumerate(chunk):
                src[b, :len(ids)] = ids
            src = _ids_tensor(src, c.backend)
            max_len = decode_limit(max(lengths), limit)
            if beam_size > 1:
                out = beam_search(model, src, lengths, BOS_ID, EOS_ID, beam_size=beam_size, max_len=max_len,
                                  alpha=alpha)
            else:
                out = greedy_decode(model, src, lengths, BOS_ID, EOS_ID, max_len=max_len)
            outputs += [self._detokenize(self.tgt_tok.decode(tokens)) for tokens in out.tokens]
        return outputs

    def _warn_unknown(self, texts, encoded):
        unknown = set()
        for text, ids in zip(texts, encoded):
            pieces = self.src_tok._split(text)
            unknown.update(p for p, i in zip(pieces, ids) if i == UNK_ID)
        if unknown:
            shown = ", ".join(repr(u) for u in sorted(unknown)[:10])
            print(f"train.py: warning: {len(unknown)} symbol(s) the model never saw in training map to <unk>: "
                  f"{shown}", file=sys.stderr)


def _number(value):
    return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.3e}"


def _check_fits_in_memory(task, num_pairs):
    """Refuse a --num-pairs that cannot fit in memory (or that the task cannot make)."""
    capacity = task_capacity(task)
    if num_pairs > capacity:
        raise DataError(f"--task {task} can make at most {capacity:,} distinct pairs, asked for {num_pairs:,}")
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):          # not on Linux: no figure to check against
        return
    needed = num_pairs * BYTES_PER_PAIR
    if needed > available // 2:
        raise DataError(f"--num-pairs {num_pairs:,} needs about {needed / 2**30:.1f} GiB of memory, more than "
                        f"half of the {available / 2**30:.1f} GiB free: ask for fewer pairs")


def _ids_tensor(ids, backend):
    return mg.Tensor(mg.backend.backend_by_name(backend).from_numpy(np.asarray(ids, dtype=np.int64)))
