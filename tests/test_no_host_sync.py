"""No device->host read inside a training step.

- the strict backend's ``no_host_sync()`` refuses every kind of host read (and
  ``count_host_syncs()`` counts them), and lets pass what is not a read;
- the index-range checks of embedding, cross-entropy and BERT's segments and
  positions: made at once on NumPy or outside a ``DeferredChecks`` block, recorded on
  the device inside one and raised, with the same message, by ``raise_pending()``;
- BERT's integer ``mlm_positions`` give what the boolean mask gives;
- whole training steps of every model kind, through the objectives and train.py's own
  ``training_step`` as ``train.py`` runs them, read nothing from the device.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.deferred_checks import DeferredChecks, check_indices
from minigrad.nn import functional as F
from models.bert import BERT, BERTConfig

from helpers import tensor
from strict_backend import HostSyncError, count_host_syncs, no_host_sync


def strict(array):
    return tensor(np.asarray(array), "strict")


# -- the guard ----------------------------------------------------------------------

READS = {
    "bool()": lambda a: bool(a.sum() > 0),
    "float()": lambda a: float(a.sum()),
    "int()": lambda a: int(a.sum()),
    ".item()": lambda a: a.sum().item(),
    ".tolist()": lambda a: a.tolist(),
    ".get()": lambda a: a.get(),
    ".nonzero()": lambda a: a.nonzero(),
    "indexing with a boolean mask": lambda a: a[a > 1],
    "assigning through a boolean mask": lambda a: a.__setitem__(a > 1, 0.0),
    "printing": lambda a: repr(a),
    "a copy to the host": lambda a: mg.backend.to_numpy(a),
}


@pytest.mark.parametrize("what", READS)
def test_no_host_sync_refuses_every_read_and_names_it(what):
    a = strict([1.0, 2.0, 3.0]).data
    READS[what](a)                                        # outside the block: allowed
    with no_host_sync():
        with pytest.raises(HostSyncError, match=f"{what}.*test_no_host_sync.py"):
            READS[what](a)
    READS[what](a)                                        # and allowed again after it


@pytest.mark.parametrize("read", [lambda t: t.item(), lambda t: t.numpy(), lambda t: float(t),
                                  lambda t: bool(t > 0)])
def test_no_host_sync_refuses_reads_through_a_tensor(read):
    with no_host_sync(), pytest.raises(HostSyncError):
        read(strict([2.0]).sum())


def test_what_is_not_a_read_passes_under_no_host_sync():
    a = strict(np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)).data
    xp = mg.backend.backend_of(a).xp
    with no_host_sync():
        y = xp.where(a > 0, a, 0.0).sum(axis=0) * 2       # device arithmetic
        rows = a[xp.asarray([1, 0])]                      # an integer index (host list to the device)
        a[0, 1] = 5.0                                     # a basic index
        shape, dtype, n = y.shape, y.dtype, len(a)        # metadata lives on the host
    assert shape == (2,) and dtype == np.float32 and n == 2 and rows.shape == (2, 2)


def test_strict_indexing_wraps_an_out_of_range_index_around_as_cupy_does():
    a = strict(np.arange(12).reshape(3, 4)).data
    xp = mg.backend.backend_of(a).xp
    assert a[xp.asarray([4, -1])].tolist() == [[4, 5, 6, 7], [8, 9, 10, 11]]          # rows 1 and 2
    assert a[..., xp.asarray([5])].tolist() == [[1], [5], [9]]                        # column 1
    assert a[a[:, 0] > 0, xp.asarray([6])].tolist() == [6, 10]                        # mask, then column 2


def test_count_host_syncs_counts_each_read_with_its_line():
    a = strict([1.0, 2.0]).data
    with count_host_syncs() as counter:
        float(a.sum())
        a.tolist()
    assert counter.count == 2
    assert [what for what, _ in counter.reads] == ["float()", ".tolist()"]
    assert all("test_no_host_sync.py" in where for _, where in counter.reads)


# -- deferred checks ----------------------------------------------------------------

def embedding_of(ids):
    """An embedding lookup of ``ids`` (a Tensor) in 5 rows, on the ids' backend."""
    weight = mg.Tensor(np.zeros((5, 2), np.float32)).to(ids.backend)
    return F.embedding(ids, weight)


def cross_entropy_of(ids):
    """The cross-entropy of 5 classes against targets ``ids``, on the ids' backend."""
    logits = mg.Tensor(np.zeros((len(ids), 5), np.float32)).to(ids.backend)
    return F.cross_entropy(logits, ids)


RANGE_CHECKS = {
    "embedding": (embedding_of, r"indices must be in \[0, 5\) for 5 embeddings, got values from 0 to 7"),
    "cross_entropy": (cross_entropy_of, r"target 7 is out of range: expected a class in \[0, 5\)"),
}


@pytest.mark.parametrize("name", RANGE_CHECKS)
def test_a_range_check_inside_deferred_checks_waits_for_raise_pending(name):
    op, message = RANGE_CHECKS[name]
    checks = DeferredChecks()
    with no_host_sync(), checks:
        wrong = op(strict([0, 7, 1]))                         # recorded, not read; 7 wraps around
        op(strict([0, 1, 2]))                                 # a good one
    assert len(checks.pending) == 2 and wrong is not None     # a silent answer, until the read
    with pytest.raises(IndexError, match=message + r".*deferred check 1 of 2"):
        checks.raise_pending()
    assert checks.pending == []
    checks.raise_pending()                                    # the flags were consumed


@pytest.mark.parametrize("name", RANGE_CHECKS)
def test_a_range_check_outside_a_block_or_on_numpy_raises_at_once(name):
    op, message = RANGE_CHECKS[name]
    with pytest.raises(IndexError, match=message):
        op(strict([0, 7, 1]))                                 # strict, no block
    checks = DeferredChecks()
    with checks, pytest.raises(IndexError, match=message):
        op(tensor(np.array([0, 7, 1])))                       # NumPy in a block: the read is free
    assert checks.pending == []


def test_good_indices_leave_nothing_to_raise():
    checks = DeferredChecks()
    with checks:
        check_indices(strict([False, False]).data, IndexError, lambda: "never")
        check_indices(strict(np.zeros(0, bool)).data, IndexError, lambda: "never")   # empty: nothing recorded
    assert len(checks.pending) == 1
    checks.raise_pending()


def tiny_bert():
    mg.manual_seed(0)
    with mg.use_backend("strict"):
        return BERT(BERTConfig(vocab_size=11, max_positions=8, n_layer=1, n_head=2, d_model=4, d_ff=8,
                               dropout=0.0, gelu_approximate="tanh"))


TOKENS = np.array([[1, 5, 3, 2, 7, 8, 2], [1, 6, 9, 2, 10, 2, 0]])
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0]])
CHOSEN = np.array([[0, 0, 1, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0, 0]], dtype=bool)


def test_bert_integer_positions_give_the_boolean_masks_logits_without_a_read():
    model = tiny_bert()
    tokens, segments = strict(TOKENS), strict(SEGMENTS)
    by_mask, _ = model(tokens, segments, mlm_positions=strict(CHOSEN))
    with no_host_sync(), DeferredChecks():
        by_index, _ = model(tokens, segments, mlm_positions=strict(np.flatnonzero(CHOSEN)))
    np.testing.assert_array_equal(by_index.numpy(), by_mask.numpy())
    with no_host_sync(), DeferredChecks(), pytest.raises(HostSyncError, match="nonzero"):
        model(tokens, segments, mlm_positions=strict(CHOSEN))      # the mask costs a read


@pytest.mark.parametrize("change, error, message", [
    (dict(segments=np.where(SEGMENTS == 1, 2, 0)), ValueError, r"segments must be in \[0, type_vocab_size=2\)"),
    (dict(positions=np.array([2, 14])), IndexError, r"mlm_positions must be flat positions in \[0, B T = 14\)"),
])
def test_bert_checks_segments_and_positions_on_the_device(change, error, message):
    model = tiny_bert()
    segments = strict(change.get("segments", SEGMENTS))
    positions = strict(change.get("positions", np.flatnonzero(CHOSEN)))
    checks = DeferredChecks()
    with no_host_sync(), checks:
        model(strict(TOKENS), segments, mlm_positions=positions)
    with pytest.raises(error, match=message):
        checks.raise_pending()
    with pytest.raises(error, match=message):                 # outside a block: at once
        model(strict(TOKENS), segments, mlm_positions=positions)


def test_bert_refuses_positions_that_are_neither_a_mask_nor_flat_integers():
    with pytest.raises(ValueError, match=r"boolean array of shape \(2, 7\) or flat integer positions"):
        tiny_bert()(strict(TOKENS), strict(SEGMENTS), mlm_positions=strict(np.zeros((2, 7), np.int64)))


# -- whole training steps -------------------------------------------------------------

SMALL = ["--d-model", "16", "--heads", "2", "--ff", "32", "--batch-size", "6", "--block-size", "12",
         "--layers", "1", "--no-progress"]
SEQ2SEQ_SMALL = ["--num-pairs", "200", "--hidden", "16", "--embed-dim", "8"]     # refused with gpt and bert
MODEL_KINDS = {
    "transformer": [],
    "transformer-pre-norm-sgd": ["--pre-norm", "--optimizer", "sgd", "--schedule", "noam"],
    "gru-none": ["--model", "gru", "--attention", "none"],
    "gru-bahdanau": ["--model", "gru", "--attention", "bahdanau", "--teacher-forcing", "0.5"],
    "gru-luong-dot": ["--model", "gru", "--attention", "luong-dot"],
    "lstm-luong-general": ["--model", "lstm", "--attention", "luong-general", "--bidirectional"],
    "lstm-luong-concat": ["--model", "lstm", "--attention", "luong-concat", "--no-input-feeding"],
    "lstm-bahdanau": ["--model", "lstm", "--attention", "bahdanau", "--label-smoothing", "0.1"],
    "gpt": ["--model", "gpt", "--dropout", "0.1"],
    "bert": ["--model", "bert"],
}


def strict_run(kind, precision, backend="strict"):
    """(objective, model, optimizer, schedule, scaler, config) as train.py builds them, on ``backend``."""
    import dataclasses

    import train
    from models.objectives import make_objective
    seq2seq = [] if kind in ("gpt", "bert") else SEQ2SEQ_SMALL
    args, _ = train.parse_args(SMALL + seq2seq + MODEL_KINDS[kind] + ["--precision", precision])
    config = dataclasses.replace(train.new_config(args), backend=backend)
    mg.manual_seed(0)
    with mg.use_backend(backend):
        objective = make_objective(config)
        model = objective.build_model()
    opt, schedule = train.make_optimizer(config, model, steps_total=10)
    return objective, model, opt, schedule, train.GradScaler(enabled=precision == "float16"), config


@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_training_steps_of_every_model_kind_read_nothing_from_the_device(kind, precision):
    """Two steps of train.py's own ``training_step`` (forward and loss through the
    objective, backward, all-reduce, unscale, clipping, update, the schedule, the log's
    divergence flags) under ``no_host_sync``; then the log's window is read, as train.py
    reads it, and holds finite losses."""
    import train
    objective, model, opt, schedule, scaler, config = strict_run(kind, precision)
    params = list(model.parameters())
    state = {"history": [], "skipped_in_a_row": 0}
    checks = DeferredChecks()
    log = train.TrainingLog(config, state, total=2, start=0, checks=checks)
    step = train.TrainingStep(objective, model, opt, scaler, 1.0, checks)
    model.train()
    for number in range(2):
        batch = objective.train_batch(number)                # host arrays, made by the data pipeline
        counts = objective.counts(batch)
        lr = opt.param_groups[0]["lr"]
        with no_host_sync():
            outcome = step(batch, counts)
            if schedule is not None:
                schedule.step()
            log.record(number + 1, outcome, counts["tokens"], lr)
    log.flush()                                              # the one read: no error, no divergence
    losses = [row["train_loss"] for row in state["history"]]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in params)
    if precision == "float16":
        assert [row["loss_scale"] for row in state["history"]] == [2.0 ** 16] * 2


def test_generation_reads_the_device_once_per_token_only_to_stop():
    """GPT's sampling loop: its embeddings' checks are read once at the end, not per token;
    what remains is the stop test (one read per token, only with a stop_id) and the result."""
    from models.generation import generate
    from models.gpt import GPT, GPTConfig
    mg.manual_seed(0)
    with mg.use_backend("strict"):
        model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, d_model=8))
    for stop_id, tokens, expected in [(None, 6, 2), (None, 12, 2), (19, 6, 2 + 6)]:
        with count_host_syncs() as counter:
            generate(model, [[1, 2, 3], [4, 5]], tokens, temperature=0.0, stop_id=stop_id)
        assert counter.count == expected, (stop_id, tokens, counter.reads)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("kind", ["transformer", "gru-bahdanau", "gpt", "bert"])
def test_on_a_gpu_a_training_step_does_not_synchronize(kind, precision):
    """The real thing: train.py's step on CuPy under cupyx.allow_synchronize(False), which
    raises on an implicit synchronization (where this CuPy still has it)."""
    import warnings

    import cupyx
    import train
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    objective, model, opt, _, scaler, _ = strict_run(kind, precision, backend="cupy")
    checks = DeferredChecks()
    step = train.TrainingStep(objective, model, opt, scaler, 1.0, checks)
    model.train()
    for number in range(2):
        batch = objective.train_batch(number)
        counts = objective.counts(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                  # its deprecation warning
            with cupyx.allow_synchronize(False):
                loss, *_ = step(batch, counts)
    checks.raise_pending()
    assert np.isfinite(loss.item())
