"""The configuration of a run: one dataclass, one commented field per setting.

Every flag of ``train.py`` that shapes a run is a field of ``RunConfig``; the command
line is built from these fields (``train.py``'s ``build_parser``), and ``config.json``
in the run directory is ``asdict(config)`` plus the fitted tokenizers. What a field may
do when a run is resumed is said by its ``on_resume``:

    fixed     the run's identity (data, tokenizer, model shape, optimizer settings):
              --resume refuses a different value, since it would make another run
    may       how long, where and how it runs (epochs, steps, backend, checkpoints,
              output, decoding of the test metrics): --resume applies a new value
              and says so

Defaults that differ between the three objectives (translation, next token, masked
tokens) are None in the dataclass and come from ``MODEL_DEFAULTS``, one table.
"""
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["RunConfig", "ConfigError", "MODEL_KINDS", "SEQ2SEQ_KINDS", "OBJECTIVE_OF", "MODEL_DEFAULTS",
           "config_fields", "with_model_defaults", "config_from_json", "tokenizer_options"]

SEQ2SEQ_KINDS = ("transformer", "gru", "lstm")
MODEL_KINDS = SEQ2SEQ_KINDS + ("gpt", "bert")
OBJECTIVE_OF = {"transformer": "translation", "gru": "translation", "lstm": "translation",
                "gpt": "language_model", "bert": "masked_lm"}


class ConfigError(ValueError):
    """A configuration that cannot make a run: a bad value, or a config.json edited wrong."""


def setting(default, help, group, on_resume="fixed", choices=None, metavar=None):
    """A field with what the command line and --resume need to know about it."""
    return field(default=default, metadata={"help": help, "group": group, "on_resume": on_resume,
                                             "choices": choices, "metavar": metavar})


@dataclass
class RunConfig:
    # -- what to learn from ------------------------------------------------------
    task: str = setting("dates", "a built-in generated seq2seq task (see --help's list)", "data")
    data: Optional[str] = setting(None, "a parallel corpus for seq2seq models instead of --task: one pair "
                                  "per line, source TAB target (further columns ignored), UTF-8", "data",
                                  metavar="FILE.tsv")
    text: Optional[str] = setting(None, "plain UTF-8 text for --model gpt|bert (default: the built-in "
                                  "corpus, the Python documentation that ships with Python)", "data",
                                  metavar="FILE")
    num_pairs: int = setting(12000, "pairs generated for a built-in task", "data")
    normalize: str = setting("NFC", "Unicode normalization of --data/--text text", "data",
                             choices=["NFC", "NFKC", "NFD", "NFKD", "none"])
    lowercase: bool = setting(False, "lower-case --data/--text text", "data")
    split_punctuation: bool = setting(False, "put spaces around punctuation in --data text (outputs are "
                                      "detokenized again for samples and BLEU)", "data")
    min_length: int = setting(1, "drop --data pairs with fewer words on a side", "data")
    max_length: int = setting(50, "drop --data pairs with more words on a side", "data")
    valid_share: float = setting(0.05, "share held out for validation (pairs; for --text the next "
                                 "contiguous stretch after the training text)", "data")
    test_share: float = setting(0.05, "share held out for the test (pairs; for --text the last "
                                "contiguous stretch)", "data")
    tokenizer: Optional[str] = setting(None, "how text becomes tokens, learned from the training split "
                                       "(default: char; word for --model bert)", "data",
                                       choices=["char", "word", "bpe"])
    bpe_merges: int = setting(2000, "merges a BPE tokenizer learns", "data")
    vocab_size: int = setting(8000, "word tokenizer: keep the most frequent words, the rest become <unk>",
                              "data")
    block_size: Optional[int] = setting(None, "gpt/bert: tokens per training sequence (default: 64 for gpt, "
                                        "128 for bert)", "data")
    segment: str = setting("line", "bert: what one segment of a sentence pair is: a line of the text, or a "
                           "sentence (paragraphs cut after . ! ? before a capital)", "data",
                           choices=["line", "sentence"])

    # -- the model -----------------------------------------------------------------
    model: str = setting("transformer", "transformer, gru, lstm: sequence-to-sequence; gpt: next-token "
                         "language model; bert: masked language model + next sentence", "model",
                         choices=list(MODEL_KINDS))
    attention: str = setting("bahdanau", "gru/lstm: the attention of the decoder", "model",
                             choices=["none", "bahdanau", "luong-dot", "luong-general", "luong-concat"])
    bidirectional: bool = setting(False, "gru/lstm: a bidirectional encoder", "model")
    layers: Optional[int] = setting(None, "layers (seq2seq: each of encoder and decoder) (default: 2 for "
                                    "seq2seq, 4 for gpt and bert)", "model")
    embed_dim: int = setting(64, "gru/lstm: embedding width", "model")
    hidden: int = setting(128, "gru/lstm: hidden size", "model")
    d_model: Optional[int] = setting(None, "transformer/gpt/bert: model width (default: 128)", "model")
    heads: int = setting(4, "transformer/gpt/bert: attention heads", "model")
    ff: Optional[int] = setting(None, "transformer/gpt/bert: feed-forward width (default: 256 for the "
                                "transformer, 4 * d_model for gpt and bert)", "model")
    pre_norm: bool = setting(False, "transformer: LayerNorm before each sub-layer (gpt is always "
                             "pre-norm, bert always post-norm)", "model")
    tie_embeddings: bool = setting(False, "transformer: the output layer shares the target embedding "
                                   "(gpt and bert always tie theirs)", "model")
    max_positions: int = setting(512, "transformer: the longest sequence its position table holds", "model")
    dropout: Optional[float] = setting(None, "dropout probability (default: 0.1; 0.0 for gpt)", "model")
    teacher_forcing: float = setting(1.0, "gru/lstm: probability of reading the true previous token "
                                     "in training", "model")
    no_input_feeding: bool = setting(False, "luong attention: do not feed the attentional state into the "
                                     "next step", "model")

    # -- training --------------------------------------------------------------------
    optimizer: Optional[str] = setting(None, "the optimizer (default: adam; adamw for gpt and bert)",
                                       "training", choices=["adam", "adamw", "sgd"])
    lr: Optional[float] = setting(None, "peak learning rate (default: 2e-3; 1e-3 for gpt and bert)",
                                  "training")
    beta2: Optional[float] = setting(None, "Adam's beta2 (default: 0.98; 0.99 for gpt, 0.999 for bert)",
                                     "training")
    weight_decay: Optional[float] = setting(None, "weight decay (default: 0; 0.1 for gpt, 0.01 for bert; "
                                            "applied to the matrices, embedding and position tables "
                                            "included, never to biases or LayerNorm gains)", "training")
    schedule: str = setting("cosine", "cosine: linear warm-up then cosine decay to --min-lr; noam: the "
                            "Transformer paper's warm-up and 1/sqrt(step) decay (ignores --lr); constant",
                            "training", choices=["cosine", "noam", "constant"])
    warmup: int = setting(100, "warm-up steps", "training")
    min_lr: Optional[float] = setting(None, "cosine: the learning rate at the end (default: 0; lr/10 for "
                                      "gpt and bert)", "training")
    clip: float = setting(1.0, "clip the gradient norm to this (0: off)", "training")
    label_smoothing: Optional[float] = setting(None, "seq2seq: label smoothing of the cross-entropy "
                                               "(Szegedy et al., 2016) (default: 0; 0.1 for a --data corpus)",
                                               "training")
    batch_size: Optional[int] = setting(None, "examples per step (default: 64; 12 for gpt, 32 for bert)",
                                        "training")
    epochs: Optional[int] = setting(None, "seq2seq: passes over the training pairs (default: 10; 30 for a "
                                    "--data corpus)", "training", on_resume="may")
    max_steps: Optional[int] = setting(None, "stop after this many steps (default: 0 = no limit for "
                                       "seq2seq; 2000 for gpt and bert)", "training", on_resume="may")
    seed: int = setting(0, "the seed of the data split, the initial weights, dropout and batches",
                        "training")

    # -- evaluation and checkpoints ----------------------------------------------
    eval_every: Optional[int] = setting(None, "validate every this many steps (default: 0 = at the end of "
                                        "each epoch for seq2seq; 250 for gpt and bert); always at the "
                                        "last step", "evaluation", on_resume="may")
    checkpoint_every: int = setting(200, "steps between checkpoints (also at every validation)",
                                    "evaluation", on_resume="may")
    beam_size: int = setting(1, "seq2seq: beam width of the test decoding (1: greedy)", "evaluation",
                             on_resume="may")
    length_penalty: float = setting(0.6, "beam search: alpha of Wu et al.'s lp(Y) = ((5 + |Y|) / 6)^alpha "
                                    "(0: rank by log-probability alone)", "evaluation", on_resume="may")

    # -- where and how ----------------------------------------------------------------
    backend: str = setting("numpy", "numpy (CPU) or cupy (NVIDIA GPU)", "where and how", on_resume="may",
                           choices=["numpy", "cupy"])
    precision: str = setting("float32", "float16: mixed precision (minigrad/amp.py): float16 matrix products, "
                             "float32 weights, softmax, norms and loss, dynamic loss scaling; faster on a GPU. "
                             "On the CPU (numpy) float16 is for correctness, not speed", "where and how",
                             choices=["float32", "float16"])
    out: Optional[str] = setting(None, "the run directory (default: runs/<task or data file>-<model>)",
                                 "where and how", on_resume="may", metavar="DIR")
    log_every: int = setting(100, "steps between progress lines when the output is not a terminal",
                             "where and how", on_resume="may")
    no_progress: bool = setting(False, "no progress bar or progress lines", "where and how", on_resume="may")
    no_plots: bool = setting(False, "skip the PNG plots", "where and how", on_resume="may")


def config_fields():
    """The fields of ``RunConfig`` in order, each with its metadata."""
    return dataclasses.fields(RunConfig)


#: Defaults that differ by objective: a built-in seq2seq task, a seq2seq --data corpus,
#: gpt, bert. A real corpus gets a recipe measured on 5,000 Tatoeba pairs (README, "A real
#: corpus"): word tokens, label smoothing, a wider feed-forward layer, 30 epochs.
MODEL_DEFAULTS = {
    #               task      corpus    gpt      bert
    "tokenizer":    ("char",  "word",   "char",  "word"),
    "block_size":   (None,    None,     64,      128),
    "d_model":      (128,     128,      128,     128),
    "layers":       (2,       2,        4,       4),
    "ff":           (256,     512,      None,    None),       # None: 4 * d_model
    "dropout":      (0.1,     0.1,      0.0,     0.1),
    "label_smoothing": (0.0,  0.1,      0.0,     0.0),
    "optimizer":    ("adam",  "adam",   "adamw", "adamw"),
    "lr":           (2e-3,    1e-3,     1e-3,    1e-3),
    "beta2":        (0.98,    0.98,     0.99,    0.999),
    "weight_decay": (0.0,     0.0,      0.1,     0.01),
    "min_lr":       (0.0,     0.0,      None,    None),       # None: lr / 10
    "batch_size":   (64,      64,       12,      32),
    "epochs":       (10,      30,       1,       1),          # gpt, bert: --max-steps decides
    "max_steps":    (0,       0,        2000,    2000),
    "eval_every":   (0,       0,        250,     250),
}
_COLUMN = {"task": 0, "corpus": 1, "language_model": 2, "masked_lm": 3}


def with_model_defaults(config):
    """A copy of ``config`` with every None default filled for its model kind."""
    objective = OBJECTIVE_OF[config.model]
    column = _COLUMN[("corpus" if config.data else "task") if objective == "translation" else objective]
    filled = {}
    for name, values in MODEL_DEFAULTS.items():
        if getattr(config, name) is None:
            filled[name] = values[column]
    config = dataclasses.replace(config, **filled)
    derived = {}
    if config.ff is None:
        derived["ff"] = 4 * config.d_model
    if config.min_lr is None:
        derived["min_lr"] = config.lr / 10
    if config.out is None:
        derived["out"] = default_out(config)
    return dataclasses.replace(config, **derived)


def tokenizer_options(config):
    """The options of ``build_tokenizer`` that ``config`` sets for its tokenizer kind."""
    if config.tokenizer == "bpe":
        return {"num_merges": config.bpe_merges}
    if config.tokenizer == "word":
        return {"max_size": config.vocab_size}
    return {}


def default_out(config):
    """runs/<what it learns from>-<model>: a name that says what runs there."""
    if config.model in SEQ2SEQ_KINDS:
        source = _stem(config.data) if config.data else config.task
    else:
        source = _stem(config.text) if config.text else "python-docs"
    kind = config.model
    if config.model in ("gru", "lstm") and config.attention != "none":
        kind += "-" + config.attention
    return os.path.join("runs", f"{source}-{kind}")


def _stem(path):
    name = os.path.basename(os.path.normpath(path)) or "data"
    return os.path.splitext(name)[0] or name


_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}

#: Settings added after runs were saved: what a config.json without them meant.
ADDED_LATER = {"precision": "float32", "segment": "line"}


def config_from_json(values, source="config.json"):
    """A ``RunConfig`` from the dict ``asdict`` made, every key and type checked.

    Raises ``ConfigError`` naming the key, what was expected and what came: a run
    directory's config.json edited by hand must not turn into a traceback later.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a JSON object of settings, got {type(values).__name__}")
    names = {f.name for f in config_fields()}
    values = dict(ADDED_LATER, **values)       # a run written before a setting existed: its default
    missing = sorted(names - set(values))
    if missing:
        raise ConfigError(f"{source}: missing the setting(s) {', '.join(missing)}; it was not written by "
                          "this train.py")
    checked = {}
    for f in config_fields():
        value = values[f.name]
        kind, optional = _field_type(f)
        if value is None and optional:
            checked[f.name] = None
            continue
        if isinstance(value, bool) and kind is not bool or not isinstance(value, _TYPES[kind]):
            raise ConfigError(f"{source}: the setting {f.name!r} must be {kind.__name__}"
                              f"{' or null' if optional else ''}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{source}: the setting {f.name!r} must be a finite number, got {value!r}")
        choices = f.metadata["choices"]
        if choices and value not in choices:
            raise ConfigError(f"{source}: the setting {f.name!r} must be one of {choices}, got {value!r}")
        checked[f.name] = float(value) if kind is float else value
    return RunConfig(**checked)


def _field_type(f):
    """(int | float | str | bool, optional?) of a dataclass field."""
    annotation = f.type
    if annotation in _TYPES:
        return annotation, False
    inner = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return inner[0], True
