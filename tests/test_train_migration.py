"""A run written by the previous train.py (tests/data/run_078d702: config.json with
``src_tokenizer``/``tgt_tokenizer``, the RNN's attention weights under ``attention.``,
one optimizer group, a trainer state counted in epochs and batches) is read, evaluated,
used and resumed by today's train.py."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import train  # noqa: E402
from models import checkpoint  # noqa: E402

OLD_RUN = os.path.join(ROOT, "tests", "data", "run_078d702")


@pytest.fixture
def old_run(tmp_path):
    target = tmp_path / "old"
    shutil.copytree(OLD_RUN, target)
    return str(target)


def test_evaluate_reads_the_old_weights_to_the_old_test_metrics(old_run):
    """The renamed weights land where they belong: the test loss is the one the old train.py measured."""
    old = json.load(open(os.path.join(OLD_RUN, "metrics.json")))
    metrics = train.main(["--evaluate", old_run])
    assert metrics["loss"] == pytest.approx(old["loss"], rel=1e-6)
    assert metrics["token_accuracy"] == pytest.approx(old["token_accuracy"])


def test_the_old_optimizer_state_lands_on_the_same_parameters(old_run):
    """The old single group, numbered in the old parameter order, is cut into today's two
    groups: each parameter gets back the Adam moments it had."""
    config, tokenizers, _ = train.read_config(old_run)
    objective = train.make_objective(config, tokenizers)
    model = objective.build_model()
    opt, _ = train.make_optimizer(config, model, steps_total=20)
    saved = checkpoint.load_checkpoint(os.path.join(old_run, "checkpoint.safetensors"))
    old_order = json.load(open(os.path.join(OLD_RUN, "parameter_order.json")))
    _, opt_state, trainer = train.migrate_checkpoint(saved, model, opt)

    names = {id(p): n for n, p in model.named_parameters()}
    today = [names[id(p)] for group in opt.param_groups for p in group["params"]]
    assert len(opt_state["param_groups"]) == 2 and [len(g["params"]) for g in opt_state["param_groups"]] == \
        [len(g["params"]) for g in opt.param_groups]
    for index, name in enumerate(today):
        old_name = name.replace("attention_layer.", "attention.", 1)
        old_state = saved[1]["state"][old_order.index(old_name)]
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(opt_state["state"][index][key], old_state[key], err_msg=name)
    assert trainer["validated_step"] is None           # killed in the middle of an epoch: not validated there


def test_resume_continues_the_old_run(old_run, capsys):
    train.main(["--resume", old_run, "--max-steps", "20", "--no-progress", "--no-plots"])
    out = capsys.readouterr().out
    assert "resuming" in out and "at step 15 of 20" in out
    weights, _, trainer = checkpoint.load_checkpoint(os.path.join(old_run, "checkpoint.safetensors"))
    assert trainer["step"] == 20 and trainer["validated_step"] == 20
    steps = [row["step"] for row in trainer["history"] if "train_loss" in row and row["train_loss"] is not None]
    assert steps == list(range(1, 21))                  # the old rows kept, five new ones after them
    assert any(name.startswith("attention_layer.") for name in weights)      # saved again under today's names
    assert all(np.isfinite(w).all() for w in weights.values())


def test_translate_reads_the_old_run(old_run, capsys):
    train.main(["--translate", "abc", "--run", old_run])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "error" not in captured.err
