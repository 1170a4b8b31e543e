"""The interface every objective implements: what ``train.py`` calls, and nothing else.

A new objective is a subclass of ``Objective`` that fills in every method below that
raises ``NotImplementedError``, registered in ``models.objectives.OBJECTIVES``.
"""

__all__ = ["Objective"]


class Objective:
    """What a run learns, from which data, how it is measured, and how a saved run is used.

    ``__init__(config, tokenizers=None, load_data=True)``: the data read and split, the
    tokenizers fitted on the training split (or rebuilt from a saved run's
    ``tokenizers``), every split checked against the model it will meet. With
    ``load_data=False`` nothing is read: a saved run used for --translate, --generate
    or --fill needs only its tokenizers.
    """

    #: the objective's name, as ``models.config.OBJECTIVE_OF`` has it
    name = None
    #: curves.png's right panel: ((history key, label), ...), and whether they lie in [0, 1]
    CURVES = ((), True)

    def __init__(self, config, tokenizers=None, load_data=True):
        raise NotImplementedError

    # -- before training -----------------------------------------------------------
    @staticmethod
    def check_memory(config):
        """Refuse (DataError) data that cannot fit in this machine's memory, before any of
        it is generated or read. The default: nothing to check."""

    def fingerprint(self):
        """A SHA-256 of the data read (None: the data is generated from the seed), kept in
        config.json so that --resume can refuse data that changed."""
        raise NotImplementedError

    def tokenizers(self):
        """The fitted tokenizers as a JSON-able dict, saved in config.json."""
        raise NotImplementedError

    def describe(self):
        """One line on the data: its source and the sizes of its splits."""
        raise NotImplementedError

    def build_model(self):
        """The model of ``config``, freshly initialized from the current seed."""
        raise NotImplementedError

    # -- the training loop ---------------------------------------------------------
    def total_steps(self):
        """The number of training steps of the run."""
        raise NotImplementedError

    def is_eval_point(self, step):
        """Whether the run validates after training step ``step`` (1-based)."""
        raise NotImplementedError

    def epoch_of(self, step):
        """The epoch (0-based) that step ``step`` belongs to, for the log (None: no epochs)."""
        raise NotImplementedError

    def train_batch(self, step):
        """The global batch of training step ``step``: a function of (seed, step) alone,
        so that a resumed run draws what an uninterrupted one does. A dataclass of host
        arrays whose first axis is the batch (``models.sharing.shard_rows`` cuts it)."""
        raise NotImplementedError

    def counts(self, batch):
        """The host numbers the batch's loss is averaged over ({"tokens": ..., ...}): a
        shard's loss is its sum over the whole batch's count, so the shards' gradients
        add up to the whole batch's."""
        raise NotImplementedError

    def loss(self, model, batch, counts):
        """The forward pass and the loss: a scalar Tensor."""
        raise NotImplementedError

    # -- measuring -------------------------------------------------------------------
    def evaluate(self, model, split):
        """{metric: host float} over the split "valid" or "test" (shared out among the
        ranks of a data-parallel job, summed over them)."""
        raise NotImplementedError

    @staticmethod
    def score(metrics):
        """Higher is better: the validation score that picks model.safetensors."""
        raise NotImplementedError

    @staticmethod
    def summary(metrics):
        """[(label, formatted value), ...]: the test metrics as the run's summary prints them."""
        raise NotImplementedError

    @staticmethod
    def valid_line(metrics):
        """The validation metrics on one line of the log."""
        raise NotImplementedError

    # -- files -------------------------------------------------------------------------
    def sample_lines(self, model):
        """The text of samples.txt: what the model makes of a few test examples,
        the same from a resumed run as from an uninterrupted one."""
        raise NotImplementedError

    def plots(self, model, out):
        """The objective's own PNGs in ``out`` (curves.png is drawn by train.py)."""

    # -- using a saved run ---------------------------------------------------------------
    def use(self, model, lines, options):
        """--translate, --generate or --fill: one output line per input line.
        ``options``: the parsed command line (sampling settings)."""
        raise NotImplementedError
