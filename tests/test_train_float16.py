"""train.py --precision float16 (mixed precision, minigrad/amp.py) on the CPU.

- the default task's training loss in float16 follows float32's, step by step;
- a float16 run interrupted and resumed ends bit for bit where an uninterrupted one
  does (weights, optimizer, loss scale, history);
- an overflowing step is skipped, the scale halved, the step not counted by Adam, and
  the run goes on; many skips in a row, or one at a loss scale of 1, stop it with a
  clear message and exit status 3;
- the precision is part of a run: --resume keeps it, an older config.json without it
  means float32.
"""
import csv
import functools
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from minigrad import amp  # noqa: E402
from minigrad.ops.nn_linear import Linear  # noqa: E402
from helpers import assert_same_weights_and_optimizer  # noqa: E402
from models import checkpoint  # noqa: E402

# The default task (dates) and model kind (Transformer), made small.
SMALL = ["--num-pairs", "900", "--d-model", "32", "--ff", "64", "--heads", "2", "--layers", "1",
         "--batch-size", "32", "--warmup", "10", "--no-progress", "--no-plots"]


def run(tmp_path, name, *flags):
    out = str(tmp_path / name)
    return train.main(SMALL + ["--out", out, *flags]), out


def history(out):
    with open(os.path.join(out, "history.csv")) as f:
        return [row for row in csv.DictReader(f) if row["train_loss"]]


REAL_UNSCALE = amp.GradScaler.unscale_


def inject_inf(monkeypatch, steps):
    """Put an inf into a gradient before unscale_ at the given (1-based) steps, or at every
    step when ``steps`` is None: what a float16 overflow in the backward leaves."""
    calls = {"n": 0}

    def unscale_(self, optimizer):
        calls["n"] += 1
        if steps is None or calls["n"] in steps:
            next(p for p in optimizer.parameters() if p.grad is not None).grad[0] = np.inf
        return REAL_UNSCALE(self, optimizer)
    monkeypatch.setattr(amp.GradScaler, "unscale_", unscale_)


def test_the_float16_loss_follows_float32s_on_the_default_task(tmp_path, monkeypatch):
    common = ["--max-steps", "30", "--num-pairs", "600"]
    m32, out32 = run(tmp_path, "f32", *common)
    seen, forward = set(), Linear.forward
    monkeypatch.setattr(Linear, "forward", lambda self, x, *rest: seen.add(x.dtype) or forward(self, x, *rest))
    m16, out16 = run(tmp_path, "f16", *common, "--precision", "float16")
    assert seen == {np.dtype("float16")}                        # the products ran in float16
    l32 = np.array([float(r["train_loss"]) for r in history(out32)])
    l16 = np.array([float(r["train_loss"]) for r in history(out16)])
    assert len(l16) == len(l32) == 30
    assert l32[-1] < 0.75 * l32[0]                              # it learns
    assert np.abs(l16 - l32).max() < 0.003, np.abs(l16 - l32).max()          # measured: 2.3e-4
    assert abs(m16["loss"] - m32["loss"]) < 0.01 * m32["loss"], (m16["loss"], m32["loss"])
    assert {r["loss_scale"] for r in history(out16)} == {str(2.0 ** 16)} and "loss_scale" not in history(out32)[0]
    assert json.load(open(os.path.join(out16, "config.json")))["precision"] == "float16"


def test_a_float16_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    common = ["--max-steps", "12", "--checkpoint-every", "3", "--precision", "float16"]
    inject_inf(monkeypatch, {2, 8})                             # skipped steps on both sides of the cut
    _, whole = run(tmp_path, "whole", *common)
    inject_inf(monkeypatch, {2, 8})
    real_seed = train.step_seed

    def interrupt_at_step_7(seed, step, rank=0):
        if step == 7:
            raise KeyboardInterrupt
        return real_seed(seed, step, rank)
    monkeypatch.setattr(train, "step_seed", interrupt_at_step_7)
    with pytest.raises(SystemExit):
        run(tmp_path, "parts", *common)
    monkeypatch.setattr(train, "step_seed", real_seed)
    inject_inf(monkeypatch, {8 - 6})                            # the resumed run's 2nd step is step 8
    parts = str(tmp_path / "parts")
    train.main(["--resume", parts, "--no-progress", "--no-plots"])
    a = checkpoint.load_checkpoint(os.path.join(whole, "checkpoint.safetensors"))
    b = checkpoint.load_checkpoint(os.path.join(parts, "checkpoint.safetensors"))
    assert_same_weights_and_optimizer(a, b)
    assert a[2]["scaler"] == b[2]["scaler"] and a[2]["scaler"]["scale"] == 2.0 ** 14
    assert a[1]["state"][0]["step"] == 12 - 2                  # Adam counted the steps taken
    rows = lambda out: [(r["step"], r["train_loss"], r["loss_scale"]) for r in history(out)]  # noqa: E731
    assert rows(whole) == rows(parts)


def test_an_overflow_skips_the_step_and_halves_the_scale_without_stopping(tmp_path, monkeypatch):
    inject_inf(monkeypatch, {3, 4})
    metrics, out = run(tmp_path, "run", "--max-steps", "8", "--precision", "float16")
    scales = [float(r["loss_scale"]) for r in history(out)]
    assert scales == [2.0 ** 16] * 3 + [2.0 ** 15] + [2.0 ** 14] * 4          # the scale each step used
    saved = checkpoint.load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert saved[1]["state"][0]["step"] == 6 and saved[2]["scaler"]["scale"] == 2.0 ** 14
    assert np.isfinite(metrics["loss"])


def test_many_skipped_steps_in_a_row_stop_the_run(tmp_path, monkeypatch, capsys):
    inject_inf(monkeypatch, None)
    monkeypatch.setattr(train.TrainingLog, "MAX_SKIPPED", 5)
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "run", "--max-steps", "30", "--precision", "float16")
    assert exit_info.value.code == 3
    error = capsys.readouterr().err
    assert "diverged at step 5: 5 step(s) in a row had a non-finite gradient" in error, error
    assert "loss scale 4096" in error and "--precision float32" in error and "nothing was saved" in error


def test_an_overflow_at_loss_scale_1_stops_the_run(tmp_path, monkeypatch, capsys):
    inject_inf(monkeypatch, {4, 5})
    monkeypatch.setattr(train, "GradScaler", functools.partial(amp.GradScaler, init_scale=2.0))
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "run", "--max-steps", "30", "--checkpoint-every", "2", "--precision", "float16")
    assert exit_info.value.code == 3
    error = capsys.readouterr().err
    assert "diverged at step 5: 2 step(s) in a row" in error and "at loss scale 1 " in error, error
    assert "keeps the checkpoint of step 4" in error


def test_the_precision_is_part_of_a_run(tmp_path, capsys):
    _, out = run(tmp_path, "run", "--max-steps", "2")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", out, "--precision", "float16", "--no-progress"])
    assert exit_info.value.code == 2
    assert "cannot change --precision float16 (the run has float32)" in capsys.readouterr().err
    path = os.path.join(out, "config.json")
    config = json.load(open(path))
    del config["precision"]                                     # a run saved before the flag existed
    json.dump(config, open(path, "w"))
    assert train.main(["--evaluate", out])["loss"] > 0
