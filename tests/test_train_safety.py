"""A run is never lost: train.py killed at any phase resumes to exactly the files of an
uninterrupted run; a new run never deletes an old one; plots are atomic; a diverging
loss stops the run before a non-finite weight reaches a file; --resume applies what
the user typed and refuses what would make another run.

A "kill" here is an exception that nothing in train.py catches (a BaseException, as
SIGKILL would be were it catchable) raised at a chosen point; tests/test_train_kills.py
sends real SIGKILLs to a train.py process.
"""
import csv
import json
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from helpers import assert_same_weights_and_optimizer, interrupt_at_step  # noqa: E402
from models import checkpoint, plots  # noqa: E402
from models.config import RunConfig, with_model_defaults  # noqa: E402
from models.objectives import translation  # noqa: E402

TINY = ["--task", "reverse", "--num-pairs", "400", "--model", "gru", "--embed-dim", "16", "--hidden", "32",
        "--layers", "1", "--batch-size", "32", "--lr", "1e-2", "--warmup", "5", "--no-progress"]
# 12 steps an epoch: validation at steps 12 and 20 (the last), checkpoints at 5, 10, 12, 15, 20.
SHORT = ["--epochs", "2", "--max-steps", "20", "--checkpoint-every", "5", "--dropout", "0.2"]
TIMING = {"seconds", "tokens_per_s", "train_seconds"}


class Killed(BaseException):
    """What SIGKILL would be if a process could see it: nothing catches it."""


def run(out, *extra):
    return train.main(TINY + ["--out", str(out), *extra])


def kill_on_call(monkeypatch, owner, name, call=1):
    """Make ``owner.name`` raise Killed on its ``call``-th call (the earlier calls run)."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise Killed(f"{name} call {call}")
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def history_rows(out):
    with open(os.path.join(out, "history.csv")) as f:
        return without_timing(list(csv.DictReader(f)))


def assert_same_run(a, b):
    """Every file of run b equals run a's, bit for bit (timings aside)."""
    for name in ("model.safetensors",):
        wa, wb = checkpoint.load_weights(os.path.join(a, name)), checkpoint.load_weights(os.path.join(b, name))
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    ca = checkpoint.load_checkpoint(os.path.join(a, "checkpoint.safetensors"))
    cb = checkpoint.load_checkpoint(os.path.join(b, "checkpoint.safetensors"))
    assert_same_weights_and_optimizer(ca, cb)
    assert without_timing(ca[2]) == without_timing(cb[2])
    assert history_rows(a) == history_rows(b)
    metrics_a = json.load(open(os.path.join(a, "metrics.json")))
    metrics_b = json.load(open(os.path.join(b, "metrics.json")))
    assert without_timing(metrics_a) == without_timing(metrics_b)
    assert open(os.path.join(a, "samples.txt")).read() == open(os.path.join(b, "samples.txt")).read()
    for name in ("curves.png", "attention_0.png"):
        assert os.path.getsize(os.path.join(b, name)) > 0


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    run(out, *SHORT)
    return str(out)


# -- 1. a kill at any phase resumes to the uninterrupted run's files ------------------

KILL_POINTS = {
    # (owner, function, which call): the kill happens as that call begins
    "at the in-loop checkpoint of step 10": (train, "save_checkpoint", 2),
    "after the best weights of the epoch, before its checkpoint": (train, "save_checkpoint", 3),
    "after the checkpoint of the last step (before the test)": (train, "finish", 1),
    "during the test evaluation": (translation, "evaluate", 3),
    "while metrics.json is written": (train, "save_json", 2),           # 1: config.json
    "while samples.txt is written": (train, "atomic_write", 6),        # 1-5: history.csv
    "while the curves are plotted": (plots, "save_figure", 1),
    "while the attention maps are plotted": (plots, "save_figure", 3),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_at_any_phase_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, whole, point):
    owner, name, call = KILL_POINTS[point]
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        kill_on_call(patch, owner, name, call)
        with pytest.raises(Killed):
            run(out, *SHORT)
    train.main(["--resume", str(out), "--no-progress"])
    assert_same_run(whole, str(out))


def test_a_run_killed_twice_still_resumes_to_the_same_files(tmp_path, monkeypatch, whole):
    out = tmp_path / "run"
    for owner, name, call in [(train, "save_checkpoint", 2), (plots, "save_figure", 1)]:
        with monkeypatch.context() as patch:
            kill_on_call(patch, owner, name, call)
            with pytest.raises(Killed):
                if os.path.exists(out / "checkpoint.safetensors"):
                    train.main(["--resume", str(out), "--no-progress"])
                else:
                    run(out, *SHORT)
    train.main(["--resume", str(out), "--no-progress"])
    assert_same_run(whole, str(out))


def test_the_defaults_last_checkpoint_boundary_resumes(tmp_path, monkeypatch):
    """--max-steps a multiple of --checkpoint-every (the defaults' 200, 400, ...): the kill
    right after the checkpoint of the last step, before anything of the test."""
    flags = ["--max-steps", "10", "--checkpoint-every", "5"]
    run(tmp_path / "whole", *flags)
    with monkeypatch.context() as patch:
        kill_on_call(patch, train, "finish")
        with pytest.raises(Killed):
            run(tmp_path / "parts", *flags)
    assert not os.path.exists(tmp_path / "parts" / "metrics.json")
    train.main(["--resume", str(tmp_path / "parts"), "--no-progress"])
    assert_same_run(str(tmp_path / "whole"), str(tmp_path / "parts"))


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved_and_resume_starts_over(
        tmp_path, monkeypatch, capsys, whole):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, train, 3)
        with pytest.raises(SystemExit) as exit_info:
            run(out, *SHORT)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "before the first checkpoint" in err and "from step 0" in err and "Traceback" not in err
    train.main(["--resume", str(out), "--no-progress"])
    assert_same_run(whole, str(out))


def test_ctrl_c_after_a_checkpoint_names_it(tmp_path, monkeypatch, capsys):
    interrupt_at_step(monkeypatch, train, 7)
    with pytest.raises(SystemExit):
        run(tmp_path / "run", *SHORT)
    assert "checkpoint of step 5" in capsys.readouterr().err


# -- 2. a new run never deletes an old one -------------------------------------------------

def test_a_new_run_in_a_directory_that_holds_one_is_refused_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    run(out, "--max-steps", "3", "--no-plots")
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    with pytest.raises(SystemExit) as exit_info:
        run(out, "--max-steps", "3", "--no-plots")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--resume {out}" in err and "--overwrite" in err and "Traceback" not in err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_a_directory_with_only_a_config_is_a_run_too(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(SystemExit):
        run(out, "--max-steps", "2")
    assert (out / "config.json").read_text() == "{}"


def test_overwrite_replaces_the_run_but_keeps_the_users_other_files(tmp_path):
    out = tmp_path / "run"
    run(out, "--max-steps", "3", "--no-plots")
    (out / "notes.txt").write_text("mine")
    run(out, "--max-steps", "2", "--no-plots", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    assert checkpoint.load_checkpoint(str(out / "checkpoint.safetensors"))[2]["step"] == 2


def test_overwrite_clears_a_run_whose_directory_name_has_glob_characters(tmp_path):
    """clear_run finds attention_*.png in "runs/[fra]*?" too (the name is escaped, not a pattern)."""
    from models.run_dir import clear_run
    out = tmp_path / "[fra]*?"
    out.mkdir()
    for name in ("attention_0.png", "attention_1.png", "config.json", "notes.txt"):
        (out / name).write_text("x")
    clear_run(str(out))
    assert sorted(os.listdir(out)) == ["notes.txt"]


@pytest.mark.parametrize("flags, expected", [
    ([], os.path.join("runs", "dates-transformer")),
    (["--task", "reverse", "--model", "gru"], os.path.join("runs", "reverse-gru-bahdanau")),
    (["--data", "corpora/fra.tsv", "--model", "lstm", "--attention", "none"], os.path.join("runs", "fra-lstm")),
    (["--model", "gpt"], os.path.join("runs", "python-docs-gpt")),
    (["--model", "bert", "--text", "/books/emma.txt"], os.path.join("runs", "emma-bert")),
])
def test_the_default_out_says_what_runs_there(flags, expected):
    args, _ = train.parse_args(flags)
    assert train.new_config(args).out == expected


# -- 3. every file atomic, leftovers of a killed save removed -------------------------

def test_a_kill_while_a_plot_is_drawn_leaves_the_previous_png_whole(tmp_path, monkeypatch):
    import matplotlib.figure
    path = tmp_path / "curves.png"
    history = [{"step": s, "train_loss": 1.0 / s} for s in range(1, 5)]
    plots.plot_curves(history, str(path))
    before = path.read_bytes()
    real = matplotlib.figure.Figure.savefig

    def half_written(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise Killed
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(Killed):
        plots.plot_curves(history, str(path))
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", real)
    assert path.read_bytes() == before


def test_leftover_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    out = tmp_path / "run"
    run(out, "--max-steps", "5", "--checkpoint-every", "5", "--no-plots")
    for leftover in (".checkpoint.safetensors.x1y2.tmp", ".curves.png.abcd.tmp"):
        (out / leftover).write_bytes(b"half a file")
    (out / "keep.tmp").write_text("not ours: no leading dot")
    train.main(["--resume", str(out), "--no-progress", "--no-plots"])
    assert sorted(p for p in os.listdir(out) if p.endswith(".tmp")) == ["keep.tmp"]


# -- 4. divergence --------------------------------------------------------------------------

def test_a_diverging_run_stops_naming_the_step_and_never_saves_a_non_finite_weight(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_loss = translation.Translation.loss
    calls = {"n": 0}

    def nan_from_step_8(self, model, batch, counts):
        calls["n"] += 1
        loss = real_loss(self, model, batch, counts)
        return loss * float("nan") if calls["n"] >= 8 else loss
    monkeypatch.setattr(translation.Translation, "loss", nan_from_step_8)
    with pytest.raises(SystemExit) as exit_info:
        run(out, *SHORT)
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "diverged at step 8" in err and "--lr" in err and "Traceback" not in err
    assert "keeps the checkpoint of step 5" in err
    saved = checkpoint.load_checkpoint(str(out / "checkpoint.safetensors"))
    assert saved[2]["step"] == 5                                    # the last good checkpoint
    for array in list(saved[0].values()) + [v for e in saved[1]["state"].values() for v in e.values()
                                            if hasattr(v, "dtype")]:
        assert np.isfinite(array).all()
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()


def test_a_huge_learning_rate_ends_in_the_divergence_message_not_nan_files(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run(out, "--optimizer", "sgd", "--lr", "1e30", "--warmup", "0", "--clip", "0", "--max-steps", "40")
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "diverged at step 2" in err and "nothing was saved" in err
    for name in os.listdir(out):
        if name.endswith(".safetensors"):
            assert all(np.isfinite(a).all() for a in checkpoint.load_weights(str(out / name)).values())


def test_weights_with_a_nan_never_overwrite_a_saved_file(tmp_path):
    path = str(tmp_path / "model.safetensors")
    checkpoint.save_weights({"w": np.ones(3, np.float32)}, path)
    with pytest.raises(checkpoint.NonFiniteWeightsError):
        checkpoint.save_weights({"w": np.array([1.0, np.nan, 2.0], np.float32)}, path)
    np.testing.assert_array_equal(checkpoint.load_weights(path)["w"], np.ones(3))


def test_metrics_json_is_strict_json(tmp_path):
    path = str(tmp_path / "metrics.json")
    checkpoint.save_json({"loss": float("nan"), "perplexity": float("inf"), "bleu": 12.5, "rows": [float("-inf")]},
                         path)

    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    assert json.loads(open(path).read(), parse_constant=refuse) == {"loss": None, "perplexity": None,
                                                                     "bleu": 12.5, "rows": [None]}


@pytest.mark.parametrize("flag, value", [("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "nan"),
                                         ("--clip", "nan"), ("--dropout", "nan"), ("--top-p", "inf")])
def test_non_finite_numbers_are_refused_at_parse_time(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path / "run", flag, value)
    assert exit_info.value.code == 2
    assert "finite" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- --resume means what it says ------------------------------------------------------------

@pytest.fixture
def short_run(tmp_path):
    out = tmp_path / "run"
    run(out, "--epochs", "1", "--max-steps", "4", "--checkpoint-every", "2", "--no-plots")
    return str(out)


def saved_config(out):
    return json.load(open(os.path.join(out, "config.json")))


def test_resume_applies_a_typed_flag_even_when_it_equals_the_parser_default(short_run, capsys):
    train.main(["--resume", short_run, "--epochs", "10", "--max-steps", "0", "--checkpoint-every", "200",
                "--no-progress", "--no-plots"])
    out = capsys.readouterr().out
    assert "applying --epochs 10 (was 1), --max-steps 0 (was 4), --checkpoint-every 200 (was 2)" in out
    assert checkpoint.load_checkpoint(os.path.join(short_run, "checkpoint.safetensors"))[2]["step"] == 120


def test_resume_moves_a_run_back_to_the_cpu(short_run, capsys):
    config = saved_config(short_run)
    config["backend"] = "cupy"
    checkpoint.save_json(config, os.path.join(short_run, "config.json"))
    train.main(["--resume", short_run, "--backend", "numpy", "--max-steps", "6", "--no-progress", "--no-plots"])
    assert "--backend numpy (was cupy)" in capsys.readouterr().out


@pytest.mark.parametrize("flags, named", [
    (["--lr", "0.5"], "--lr 0.5 (the run has 0.01)"),
    (["--model", "lstm"], "--model lstm (the run has gru)"),
    (["--hidden", "64", "--tokenizer", "word"], "--hidden 64"),
    (["--seed", "3"], "--seed 3"),
    (["--out", "elsewhere"], "--out elsewhere"),
])
def test_resume_refuses_what_would_make_another_run(short_run, capsys, flags, named):
    before = os.path.getmtime(os.path.join(short_run, "checkpoint.safetensors"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", short_run, "--no-progress", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert os.path.getmtime(os.path.join(short_run, "checkpoint.safetensors")) == before


def test_resume_accepts_a_fixed_flag_typed_with_the_runs_own_value(short_run, capsys):
    metrics = train.main(["--resume", short_run, "--lr", "1e-2", "--model", "gru", "--no-progress", "--no-plots"])
    assert metrics["steps"] == 4 and "applying" not in capsys.readouterr().out      # nothing to apply


@pytest.mark.parametrize("flags", [["--evaluate", "D", "--translate", "x", "--run", "D"],
                                   ["--evaluate", "D", "--resume", "D"],
                                   ["--resume", "D", "--overwrite"],
                                   ["--run", "D"]])
def test_conflicting_actions_are_an_error_not_a_silent_choice(capsys, flags):
    with pytest.raises(SystemExit) as exit_info:
        train.main(flags)
    assert exit_info.value.code == 2
    assert "--" in capsys.readouterr().err


def test_the_config_of_a_new_run_records_the_resolved_defaults(short_run):
    config = saved_config(short_run)
    assert config["lr"] == 1e-2 and config["optimizer"] == "adam" and config["layers"] == 1
    assert config["out"] == short_run and set(config["tokenizers"]) == {"source", "target"}
    assert set(config) - {"tokenizers", "data_sha256"} == set(RunConfig.__dataclass_fields__)
    assert config["data_sha256"] is None                      # a generated task: nothing to fingerprint
    assert with_model_defaults(RunConfig()).batch_size == 64
    assert not math.isnan(config["dropout"])
