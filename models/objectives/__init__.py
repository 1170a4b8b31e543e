"""What a run learns: one class per objective, the one seam between ``train.py`` and
the data, the loss and the metrics.

    objective = make_objective(config)          # data read, split, tokenizers fitted,
                                                # every split checked against the model
    model = objective.build_model()
    batch = objective.train_batch(step)         # the batch of training step ``step``:
                                                # a function of (seed, step) alone, so a
                                                # resumed run draws what a whole one does
    counts = objective.counts(batch)            # host numbers the loss is averaged over
    loss = objective.loss(model, batch, counts) # scalar Tensor: forward and loss
    metrics = objective.evaluate(model, "valid")   # host floats; "test" at the end
    objective.score(metrics)                    # higher is better: picks model.safetensors
    objective.sample_lines(model)               # the text of samples.txt
    objective.plots(model, out)                 # the objective's own PNGs (curves.png is shared)
    objective.use(model, lines, options)        # translate / generate / fill, one line each

``Objective`` (objective.py) lists every member train.py calls, each with what it must
return: the schedule (``total_steps``, ``is_eval_point``, ``epoch_of``), the log and the
summary (``describe``, ``valid_line``, ``summary``, ``CURVES``), the run directory
(``tokenizers``, ``fingerprint``), and the checks before anything is read (``check_memory``).

    translation      Translation      pairs -> a seq2seq model (transformer, gru, lstm)
    language_model   LanguageModel    text  -> GPT, the next token
    masked_lm        MaskedLM         text  -> BERT, masked tokens and the next sentence

``counts`` exists for data parallelism: the loss of a shard is its sum divided by the
count of the whole batch, so the shards' gradients add up to the whole batch's.

A fourth objective is a subclass of ``Objective`` registered in ``OBJECTIVES`` (and its
model kinds in ``models.config.OBJECTIVE_OF``).
"""
import importlib

from models.config import OBJECTIVE_OF
from models.objectives.objective import Objective

__all__ = ["Objective", "OBJECTIVES", "make_objective", "objective_class"]

#: Each objective's class as "module:Class", imported when a run needs it (a GPT run
#: never imports the translation code).
OBJECTIVES = {
    "translation": "models.objectives.translation:Translation",
    "language_model": "models.objectives.language_model:LanguageModel",
    "masked_lm": "models.objectives.masked_lm:MaskedLM",
}


def objective_class(model_kind):
    """The ``Objective`` subclass that trains ``--model model_kind``."""
    module, name = OBJECTIVES[OBJECTIVE_OF[model_kind]].split(":")
    return getattr(importlib.import_module(module), name)


def make_objective(config, tokenizers=None, load_data=True):
    """The objective of ``config.model``: with ``tokenizers`` (a saved run's) it reuses
    them; with ``load_data=False`` it reads no data (translate, generate, fill)."""
    return objective_class(config.model)(config, tokenizers=tokenizers, load_data=load_data)
