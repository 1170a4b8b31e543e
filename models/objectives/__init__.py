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
    objective.write_samples(model, path)        # samples.txt
    objective.plots(model, out)                 # the objective's own PNGs (curves.png is shared)
    objective.use(model, lines, options)        # translate / generate / fill, one line each

    translation      Translation      pairs -> a seq2seq model (transformer, gru, lstm)
    language_model   LanguageModel    text  -> GPT, the next token
    masked_lm        MaskedLM         text  -> BERT, masked tokens and the next sentence

``counts`` exists for data parallelism: the loss of a shard is its sum divided by the
count of the whole batch, so the shards' gradients add up to the whole batch's.

A fourth objective is a class with these methods, registered in ``OBJECTIVES``.
"""
from models.config import OBJECTIVE_OF

__all__ = ["make_objective", "objective_class"]


def objective_class(model_kind):
    name = OBJECTIVE_OF[model_kind]
    if name == "translation":
        from models.objectives.translation import Translation
        return Translation
    if name == "language_model":
        from models.objectives.language_model import LanguageModel
        return LanguageModel
    from models.objectives.masked_lm import MaskedLM
    return MaskedLM


def make_objective(config, tokenizers=None, load_data=True):
    """The objective of ``config.model``: with ``tokenizers`` (a saved run's) it reuses
    them; with ``load_data=False`` it reads no data (translate, generate, fill)."""
    return objective_class(config.model)(config, tokenizers=tokenizers, load_data=load_data)
