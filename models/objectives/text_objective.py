"""What GPT's and BERT's objectives share: plain text, split in three contiguous parts,
one tokenizer fitted on the training part, and training by steps (random windows or
pairs drawn from (seed, step): no epochs), validated every --eval-every steps.

    --text FILE       the user's UTF-8 text (``minigrad.data.load_text``)
    (no --text)       the built-in corpus: Python's own documentation, read offline
"""
import hashlib

import minigrad as mg
from minigrad.data import builtin_corpus, build_tokenizer, load_text, split_text, tokenizer_from_dict
from models.config import tokenizer_options
from models.objectives.objective import Objective

__all__ = ["TextObjective"]


class TextObjective(Objective):
    """Base of ``LanguageModel`` and ``MaskedLM``; a subclass sets ``SPECIALS`` (None: the
    tokenizer's own) and reads its splits in ``_prepare(parts)``."""

    SPECIALS = None

    def __init__(self, config, tokenizers=None, load_data=True):
        self.config = config
        self.tok = tokenizer_from_dict(tokenizers["text"]) if tokenizers is not None else None
        self._sha256 = None                     # the text's, once read (fingerprint)
        if load_data:
            self._prepare(self._split_text())

    def _split_text(self):
        """{"train", "valid", "test"}: the text cut in order; the tokenizer fitted on "train"."""
        c = self.config
        text = (load_text(c.text, normalize=None if c.normalize == "none" else c.normalize, lowercase=c.lowercase)
                if c.text else builtin_corpus())
        self._sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        parts = dict(zip(("train", "valid", "test"), split_text(text, valid=c.valid_share, test=c.test_share)))
        if self.tok is None:
            specials = {"specials": self.SPECIALS} if self.SPECIALS else {}
            self.tok = build_tokenizer(c.tokenizer, [parts["train"]], **specials, **tokenizer_options(c))
        return parts

    def fingerprint(self):
        """The SHA-256 of the text read (the built-in corpus differs between Python releases)."""
        return self._sha256

    def _source(self):
        return self.config.text or "the built-in corpus (Python's documentation)"

    def tokenizers(self):
        return {"text": self.tok.to_dict()}

    def total_steps(self):
        return self.config.max_steps

    def is_eval_point(self, step):
        return bool(self.config.eval_every) and step % self.config.eval_every == 0

    @staticmethod
    def epoch_of(step):
        return None                      # batches are drawn at random: no epochs

    def _device(self, array):
        """A host array as a Tensor on the run's backend."""
        return mg.Tensor(mg.backend.backend_by_name(self.config.backend).from_numpy(array))
