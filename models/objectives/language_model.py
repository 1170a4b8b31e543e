"""Language modelling: GPT learns P(next token | the tokens before it) from plain text.

    data      --text FILE, or the built-in corpus (Python's own documentation, offline);
              cut in three contiguous parts (train, then validation, then test: no test
              text is ever trained on), the tokenizer fitted on the training part alone
    batches   B random windows of --block-size + 1 tokens of the training ids (nanoGPT's
              get_batch), drawn from (seed, step): x the window, y x shifted by one
    loss      the mean cross-entropy of every next token of the batch, in nats
    metrics   loss (nats per token) and perplexity exp(loss) over every token of the split,
              in non-overlapping windows; bits per character: the split's total loss in
              bits over its number of characters (for character tokens, loss / ln 2)
    best      the weights with the lowest validation loss
    samples   continuations of a few test-text prompts (samples.txt), and --generate
"""
import math

import minigrad as mg
from minigrad import distributed as dist
from minigrad.data import DataError, encode_text, lm_batch, lm_eval_batches
from minigrad.nn import functional as F
from models.generation import generate
from models.gpt import GPT, GPTConfig
from models.objectives.text_objective import TextObjective
from models.sharing import shared_out

__all__ = ["LanguageModel"]

#: How the prompts of samples.txt are chosen: the first characters of a few test lines.
SAMPLE_PROMPTS, SAMPLE_PROMPT_CHARS, SAMPLE_TOKENS = 5, 24, 160


class LanguageModel(TextObjective):
    name = "language_model"
    #: curves.png's right panel: (history key, label) pairs, and whether they lie in [0, 1]
    CURVES = ((("valid_bits_per_char", "bits per character"),), False)

    def _prepare(self, parts):
        self.text = parts
        self.ids = {split: encode_text(part, self.tok) for split, part in parts.items()}
        for split, ids in self.ids.items():
            if len(ids) < 2:
                raise DataError(f"the {split} text has {len(ids)} token(s); a language model needs at "
                                "least 2 (a longer text, or larger --valid-share/--test-share)")

    def describe(self):
        return (f"{self._source()}: {len(self.ids['train']):,} training, {len(self.ids['valid']):,} validation and "
                f"{len(self.ids['test']):,} test tokens ({self.config.tokenizer}, vocabulary {self.tok.vocab_size:,})")

    # -- training ------------------------------------------------------------------
    def build_model(self):
        c = self.config
        return GPT(GPTConfig(vocab_size=self.tok.vocab_size, block_size=c.block_size, n_layer=c.layers,
                             n_head=c.heads, d_model=c.d_model, dropout=c.dropout))

    def train_batch(self, step):
        return lm_batch(self.ids["train"], self.config.batch_size, self.config.block_size, self.config.seed, step)

    @staticmethod
    def counts(batch):
        return {"tokens": batch.num_tokens}

    def loss(self, model, batch, counts):
        """Mean cross-entropy of the next token: the batch's sum over ``counts["tokens"]``."""
        x, y = self._device(batch.x), self._device(batch.y)
        logits = model(x)                                                         # (B, T, V)
        V = logits.shape[-1]
        return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum") / counts["tokens"]

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, model, split):
        """Every target of the split once: the sum of the losses read back once (shared
        out among the ranks of a data-parallel job, and summed over them)."""
        model.eval()
        total, tokens = 0.0, 0
        with mg.no_grad():
            for batch in shared_out(lm_eval_batches(self.ids[split], self.config.batch_size, self.config.block_size)):
                logits = model(self._device(batch.x))                             # (B, T, V)
                V = logits.shape[-1]
                loss = F.cross_entropy(logits.reshape(-1, V), self._device(batch.y).reshape(-1),
                                       reduction="sum").data.astype("float64")
                total = total + loss
                tokens += batch.num_tokens
        nats, tokens = dist.all_reduce_sum([float(total), tokens])
        tokens = int(tokens)
        loss = nats / tokens
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
                   "bits_per_char": nats / math.log(2) / max(len(self.text[split]) - 1, 1), "tokens": tokens}
        return metrics

    @staticmethod
    def score(metrics):
        return -metrics["loss"]

    @staticmethod
    def summary(metrics):
        return [("loss", f"{metrics['loss']:.4f} nats/token"), ("perplexity", f"{metrics['perplexity']:.3f}"),
                ("bits per char", f"{metrics['bits_per_char']:.4f}"), ("tokens", f"{metrics['tokens']:,}")]

    @staticmethod
    def valid_line(metrics):
        return (f"loss {metrics['loss']:.4f}, perplexity {metrics['perplexity']:.3f}, "
                f"bits/char {metrics['bits_per_char']:.4f}")

    # -- files ---------------------------------------------------------------------
    def sample_lines(self, model):
        """Continuations of the first characters of a few test lines, sampled at
        temperature 0.8 from the run's seed (the same text from a resumed run)."""
        lines = [line for line in self.text["test"].splitlines() if len(line.strip()) >= SAMPLE_PROMPT_CHARS]
        prompts = [line[:SAMPLE_PROMPT_CHARS] for line in lines[:SAMPLE_PROMPTS]] or [self.text["test"][:8]]
        mg.manual_seed(self.config.seed)
        outputs = self.generate(model, prompts, temperature=0.8, top_k=None, top_p=None,
                                max_new_tokens=SAMPLE_TOKENS)
        return "\n".join(f"prompt:       {p!r}\ncontinuation: {o!r}\n" for p, o in zip(prompts, outputs))

    # -- using a saved run ---------------------------------------------------------
    def use(self, model, lines, options):
        """``--generate``: each prompt and its continuation, in batches of --batch-size."""
        outputs = []
        for start in range(0, len(lines), self.config.batch_size):
            outputs += self.generate(model, lines[start:start + self.config.batch_size], options.temperature,
                                     options.top_k or None, options.top_p if options.top_p < 1.0 else None,
                                     options.max_new_tokens)
        return [prompt + output for prompt, output in zip(lines, outputs)]

    def generate(self, model, prompts, temperature, top_k, top_p, max_new_tokens):
        encoded = [self.tok.encode(p) for p in prompts]
        for number, ids in enumerate(encoded, start=1):
            if not ids:
                raise DataError(f"prompt {number} ({prompts[number - 1]!r}) has no tokens")
        result = generate(model, encoded, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        return [self.tok.decode(tokens) for tokens in result.tokens]

