"""Each user mistake train.py meets ends in one line naming what was expected and what
came, exit status 2, never a traceback: bad --out directories, a full disk, sequences
longer than the position table, edited config.json and checkpoints, impossible sizes."""
import errno
import json
import os
import sys
import tempfile

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from models import checkpoint  # noqa: E402

TINY = ["--task", "reverse", "--num-pairs", "400", "--model", "gru", "--embed-dim", "16", "--hidden", "32",
        "--layers", "1", "--batch-size", "32", "--lr", "1e-2", "--warmup", "5", "--no-progress"]


def fails_with(capsys, argv, *messages, status=2):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == status
    err = capsys.readouterr().err
    for message in messages:
        assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "run"
    train.main(TINY + ["--out", str(out), "--max-steps", "4", "--checkpoint-every", "2", "--no-plots"])
    return str(out)


def copy_of(saved, tmp_path):
    import shutil
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return str(target)


# -- --out ------------------------------------------------------------------------------

def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    fails_with(capsys, TINY + ["--out", str(tmp_path / "f")], "is a file")


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    fails_with(capsys, TINY + ["--out", str(tmp_path / "f" / "run")], "which is a file")


def test_out_that_is_empty(capsys):
    fails_with(capsys, TINY + ["--out", ""], "empty")


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
                                         (errno.ENOSPC, "no space left")])
def test_out_that_cannot_be_written(tmp_path, capsys, monkeypatch, code, words):
    # (root may write anywhere, so a read-only directory is imitated where the probe writes)
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    fails_with(capsys, TINY + ["--out", str(tmp_path / "run")], words)


def test_a_disk_that_fills_up_during_the_run(tmp_path, capsys, monkeypatch):
    real = checkpoint.save_file

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", args[1])
    monkeypatch.setattr(checkpoint, "save_file", full)
    err = fails_with(capsys, TINY + ["--out", str(tmp_path / "run"), "--max-steps", "3"], "No space left")
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert "checkpoint" in err or ".tmp" in err


# -- lengths ---------------------------------------------------------------------------

def corpus(tmp_path, long_at):
    rows = [f"w{i} x{i}\tv{i} y{i}" for i in range(40)]
    rows[long_at] = " ".join(f"w{i}" for i in range(30)) + "\tshort"
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def index_in(split):
    """A row of corpus()'s 40 that the default split (seed 0, 5% + 5%) puts in ``split``."""
    from minigrad.data import split_pairs
    train_rows, valid_rows, test_rows = split_pairs(list(range(40)), valid=0.05, test=0.05, seed=0)
    return {"train": train_rows, "valid": valid_rows, "test": test_rows}[split][0]


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_a_sequence_longer_than_the_position_table_is_refused_before_the_first_step(tmp_path, capsys, split):
    long_at = index_in(split)
    fails_with(capsys, ["--data", corpus(tmp_path, long_at), "--tokenizer", "word", "--max-positions", "10",
                        "--d-model", "16", "--heads", "2", "--layers", "1", "--ff", "16", "--out",
                        str(tmp_path / "run"), "--no-progress"], f"a {split} sequence", "more than --max-positions 10")
    assert not os.path.exists(tmp_path / "run" / "checkpoint.safetensors")


def test_translating_a_text_longer_than_the_position_table(tmp_path, capsys):
    out = str(tmp_path / "run")
    train.main(["--task", "reverse", "--num-pairs", "300", "--d-model", "16", "--heads", "2", "--layers", "1",
                "--ff", "16", "--max-positions", "14", "--max-steps", "2", "--no-progress", "--no-plots",
                "--out", out])
    capsys.readouterr()
    fails_with(capsys, ["--translate", "a" * 40, "--run", out], "40 tokens", "14 positions")


# -- flags -----------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--num-pairs", "1000000000"], "--num-pairs 1,000,000,000 needs about"),
    (["--task", "dates", "--num-pairs", "1000000000"], "can make at most"),
    (["--max-length", "2", "--min-length", "5"], "--max-length (2) must be at least --min-length (5)"),
    (["--valid-share", "0.6", "--test-share", "0.5"], "must leave data to train on"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--text", "book.txt"], "--text is for --model gpt or bert"),
])
def test_a_bad_flag_value_is_one_line(tmp_path, capsys, flags, message):
    fails_with(capsys, TINY + flags + ["--out", str(tmp_path / "run")], message)


@pytest.mark.parametrize("flags, message", [
    (["--model", "gpt", "--epochs", "3"], "--epochs: sequence-to-sequence settings, which --model gpt does not use"),
    (["--model", "bert", "--task", "dates", "--beam-size", "2"], "--beam-size, --task: sequence-to-sequence"),
    (["--model", "gpt", "--max-steps", "0"], "--model gpt trains for --max-steps"),
    (["--model", "gpt", "--segment", "sentence"], "--segment says what a BERT sentence pair is made of"),
])
def test_a_flag_the_model_kind_would_ignore_is_refused(tmp_path, capsys, flags, message):
    fails_with(capsys, flags + ["--out", str(tmp_path / "run")], message)


def test_resume_refuses_data_that_changed_since_the_run_began(tmp_path, capsys):
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "hello", "minigrad", "tensor", "graph") * 20))
    out = str(tmp_path / "run")
    train.main(["--data", str(data), "--model", "gru", "--embed-dim", "8", "--hidden", "8", "--layers", "1",
                "--batch-size", "16", "--max-steps", "2", "--no-progress", "--no-plots", "--out", out])
    capsys.readouterr()
    data.write_text(data.read_text() + "extra\tartxe\n")
    fails_with(capsys, ["--resume", out, "--max-steps", "4"], "data of", "has changed since the run began")


def test_a_beam_wider_than_the_vocabulary_is_capped(saved, capsys):
    metrics = train.main(["--evaluate", saved, "--beam-size", "500"])
    assert metrics["beam_size"] <= 40


def test_unknown_characters_at_translate_are_named_in_a_warning(saved, capsys):
    train.main(["--translate", "abc€☃", "--run", saved])
    err = capsys.readouterr().err
    assert "warning" in err and "'€'" in err and "'☃'" in err and "<unk>" in err


# -- edited or damaged run files ------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(hidden="32"), "'hidden' must be int"),
    (lambda c: c.update(lr=[1]), "'lr' must be float"),
    (lambda c: c.update(model="rnn"), "'model' must be one of"),
    (lambda c: c.pop("layers"), "missing the setting(s) layers"),
    (lambda c: c.pop("tokenizers"), "\"tokenizers\""),
    (lambda c: c["tokenizers"].update(source=5), "tokenizer"),
    (lambda c: c.update(bidirectional=1), "'bidirectional' must be bool"),
    (lambda c: c.update(hidden=0), "hidden must be at least 1, got 0"),
    (lambda c: c.update(dropout=1.5), "dropout must be in [0.0, 1.0), got 1.5"),
    (lambda c: c.update(valid_share=0.7, test_share=0.5), "must leave data to train on"),
])
def test_an_edited_config_json_is_named(saved, tmp_path, capsys, edit, message):
    run = copy_of(saved, tmp_path)
    config = json.load(open(os.path.join(run, "config.json")))
    edit(config)
    json.dump(config, open(os.path.join(run, "config.json"), "w"))
    fails_with(capsys, ["--resume", run], message)
    fails_with(capsys, ["--translate", "abc", "--run", run], message)


def test_a_config_json_that_is_not_json(saved, tmp_path, capsys):
    run = copy_of(saved, tmp_path)
    open(os.path.join(run, "config.json"), "w").write("{not json")
    fails_with(capsys, ["--evaluate", run], "not valid JSON")


def rewrite_checkpoint(run, change):
    path = os.path.join(run, "checkpoint.safetensors")
    model, optimizer, trainer = checkpoint.load_checkpoint(path)
    change(model, optimizer, trainer)
    checkpoint.save_checkpoint(path, model, optimizer, trainer)


@pytest.mark.parametrize("change, message", [
    (lambda m, o, t: t.pop("step"), "lacks a valid 'step'"),
    (lambda m, o, t: t.update(step="4"), "lacks a valid 'step'"),
    (lambda m, o, t: t.update(history=None), "'history'"),
    (lambda m, o, t: o["state"][0].pop("exp_avg"), "lacks exp_avg"),
    (lambda m, o, t: o["state"][0].update(exp_avg=np.zeros(3, np.float32)), "should have the shape"),
    (lambda m, o, t: o["state"][0].update(step="x"), "should be a number"),
    (lambda m, o, t: m.pop(next(iter(m))), "does not match"),
    (lambda m, o, t: t.update(schedule={"oops": 1}), "schedule"),
])
def test_a_checkpoint_with_a_damaged_state_is_named(saved, tmp_path, capsys, change, message):
    run = copy_of(saved, tmp_path)
    rewrite_checkpoint(run, change)
    fails_with(capsys, ["--resume", run, "--max-steps", "6"], message)


def test_a_truncated_checkpoint(saved, tmp_path, capsys):
    run = copy_of(saved, tmp_path)
    path = os.path.join(run, "checkpoint.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
    fails_with(capsys, ["--resume", run], "checkpoint.safetensors")


def test_missing_best_weights_are_named(saved, tmp_path, capsys):
    run = copy_of(saved, tmp_path)
    os.remove(os.path.join(run, "model.safetensors"))
    fails_with(capsys, ["--translate", "abc", "--run", run], "model.safetensors")


def test_a_run_of_another_kind_for_the_action(saved, capsys):
    fails_with(capsys, ["--generate", "abc", "--run", saved], "--generate needs a run of a language model")
