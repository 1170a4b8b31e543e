"""train.py through its real command line: a tiny run learns and leaves every file,
a saved run reloads to identical outputs, --resume equals an uninterrupted run, and
each user mistake ends in one clear line and exit status 2."""
import csv
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402  (the application beside the package)
from helpers import interrupt_at_step  # noqa: E402
from models import checkpoint  # noqa: E402
from models.objectives import translation  # noqa: E402

import minigrad as mg  # noqa: E402

TINY = ["--task", "reverse", "--num-pairs", "400", "--model", "gru", "--embed-dim", "16", "--hidden", "32",
        "--layers", "1", "--batch-size", "32", "--lr", "1e-2", "--warmup", "5", "--no-progress"]


def run(tmp_path, *extra, name="run"):
    out = str(tmp_path / name)
    return train.main(TINY + ["--out", out, *extra]), out


def load_run(out):
    args, typed = train.parse_args([])
    return train.load_run(out, args, typed)


def history(out):
    with open(os.path.join(out, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_a_tiny_run_learns_and_leaves_every_file(tmp_path):
    metrics, out = run(tmp_path, "--epochs", "6")
    losses = [float(r["train_loss"]) for r in history(out) if r["train_loss"]]
    assert losses[-1] < 0.8 * losses[0], losses
    for name in ["model.safetensors", "checkpoint.safetensors", "config.json", "history.csv",
                 "metrics.json", "samples.txt", "curves.png", "attention_0.png"]:
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    saved = json.load(open(os.path.join(out, "metrics.json")))
    assert set(saved) >= {"exact_match", "bleu", "token_accuracy", "loss"}
    assert saved["exact_match"] == metrics["exact_match"]
    assert "hypothesis:" in open(os.path.join(out, "samples.txt"), encoding="utf-8").read()


def test_a_saved_run_reloads_to_identical_outputs(tmp_path):
    _, out = run(tmp_path, "--max-steps", "5", "--no-plots")
    _, objective, model = load_run(out)
    again = load_run(out)[2]
    src = mg.Tensor(np.array([objective.src_tok.encode("abcdef")]))
    tgt = mg.Tensor(np.array([[1] + objective.tgt_tok.encode("fedcba")]))
    a, _ = model(src, [6], tgt)
    b, _ = again(src, [6], tgt)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    weights = checkpoint.load_weights(os.path.join(out, "model.safetensors"))
    assert set(weights) == set(model.state_dict())


def test_resume_reaches_the_same_weights_and_losses_as_an_uninterrupted_run(tmp_path, monkeypatch):
    common = ["--max-steps", "14", "--dropout", "0.3", "--checkpoint-every", "3", "--no-plots"]
    _, whole = run(tmp_path, *common, name="whole")
    # The same run, interrupted (Ctrl-C) as step 8 begins: its last checkpoint is step 6.
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, train, 7)
        with pytest.raises(SystemExit) as exit_info:
            run(tmp_path, *common, name="parts")
    assert exit_info.value.code == 130
    parts = str(tmp_path / "parts")
    assert checkpoint.load_checkpoint(os.path.join(parts, "checkpoint.safetensors"))[2]["step"] == 6
    train.main(["--resume", parts, "--no-progress", "--no-plots"])

    a = checkpoint.load_checkpoint(os.path.join(whole, "checkpoint.safetensors"))
    b = checkpoint.load_checkpoint(os.path.join(parts, "checkpoint.safetensors"))
    assert a[2]["step"] == b[2]["step"] == 14
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name], err_msg=name)
    for index in a[1]["state"]:
        for key, value in a[1]["state"][index].items():
            np.testing.assert_array_equal(value, b[1]["state"][index][key])
    train_losses = lambda out: {r["step"]: r["train_loss"] for r in history(out) if r["train_loss"]}  # noqa: E731
    assert train_losses(whole) == train_losses(parts)


def test_translate_and_evaluate_a_saved_run(tmp_path, capsys):
    _, out = run(tmp_path, "--max-steps", "5", "--no-plots")
    capsys.readouterr()
    result = train.main(["--translate", "abc", "--run", out])
    assert capsys.readouterr().out.strip() == result
    metrics = train.main(["--evaluate", out])
    assert 0.0 <= metrics["exact_match"] <= 1.0 and metrics["loss"] > 0


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "model.safetensors")
    checkpoint.save_weights({"w": np.ones((2, 2), np.float32)}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt                              # Ctrl-C in the middle of writing
    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights({"w": np.zeros((2, 2), np.float32)}, path)
    np.testing.assert_array_equal(checkpoint.load_weights(path)["w"], np.ones((2, 2)))
    assert os.listdir(tmp_path) == ["model.safetensors"]     # no temporary file left behind


# -- each mistake: one clear line, exit status 2, no traceback ---------------------

def fails_with(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_cupy_without_a_gpu_is_one_clear_line(tmp_path, capsys):
    try:
        mg.backend.backend_by_name("cupy")
        pytest.skip("a GPU is visible here")
    except mg.BackendError:
        pass
    fails_with(capsys, TINY + ["--backend", "cupy", "--out", str(tmp_path)], "cupy")


def test_a_missing_data_file(tmp_path, capsys):
    fails_with(capsys, TINY + ["--data", str(tmp_path / "nope.tsv"), "--out", str(tmp_path)], "nope.tsv")


def test_a_malformed_line_is_named_with_its_number(tmp_path, capsys):
    data = tmp_path / "pairs.tsv"
    data.write_text("hello\tbonjour\nno tab here\nyes\toui\n", encoding="utf-8")
    fails_with(capsys, TINY + ["--data", str(data), "--out", str(tmp_path / "r")], ":2")


def test_an_empty_dataset(tmp_path, capsys):
    data = tmp_path / "empty.tsv"
    data.write_text("\n\n", encoding="utf-8")
    fails_with(capsys, TINY + ["--data", str(data), "--out", str(tmp_path / "r")], "empty.tsv")


def test_an_unknown_task(tmp_path, capsys):
    fails_with(capsys, TINY + ["--task", "nonsense", "--out", str(tmp_path)], "nonsense")


def test_a_corrupt_checkpoint(tmp_path, capsys):
    _, out = run(tmp_path, "--max-steps", "3", "--no-plots")
    with open(os.path.join(out, "checkpoint.safetensors"), "wb") as f:
        f.write(b"\x00garbage" * 10)
    fails_with(capsys, ["--resume", out, "--no-progress"], "checkpoint.safetensors")


def test_a_checkpoint_that_does_not_match_its_config(tmp_path, capsys):
    _, out = run(tmp_path, "--max-steps", "3", "--no-plots")
    config = json.load(open(os.path.join(out, "config.json")))
    config["hidden"] = 48
    checkpoint.save_json(config, os.path.join(out, "config.json"))
    fails_with(capsys, ["--resume", out, "--no-progress"], "does not match")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    fails_with(capsys, ["--resume", str(tmp_path), "--no-progress"], "config.json")


def test_a_corpus_run_translates_with_the_corpus_cleaning(tmp_path, capsys, monkeypatch):
    data = tmp_path / "pairs.tsv"
    rows = [f"Hello, {w}!\tBonjour, {w} !\tCC-BY attribution" for w in ["anna", "bob", "carl", "dora", "eve",
                                                                         "finn", "gus", "hana", "ivo", "jan"]]
    data.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp_path / "r")
    train.main(["--data", str(data), "--tokenizer", "word", "--lowercase", "--split-punctuation",
                "--valid-share", "0.2", "--test-share", "0.2", "--model", "gru", "--embed-dim", "8",
                "--hidden", "8", "--layers", "1", "--max-steps", "3", "--no-progress", "--no-plots",
                "--out", out])
    config = json.load(open(os.path.join(out, "config.json")))
    vocab = config["tokenizers"]["source"]["vocab"]
    assert "hello" in vocab and "," in vocab
    src_tok = load_run(out)[1].src_tok
    seen = []
    real_decode = translation.greedy_decode

    def spy(model, src, *args, **kwargs):
        seen.append(src.numpy()[0].tolist())
        return real_decode(model, src, *args, **kwargs)
    monkeypatch.setattr(translation, "greedy_decode", spy)
    capsys.readouterr()
    name = next(w for w in vocab if w not in ("hello", ",", "!") and w.isalpha())
    result = train.main(["--translate", f"HELLO,{name.upper()}!", "--run", out])
    # "HELLO,NAME!" reaches the model as "hello , name !": four known words, no <unk>
    assert seen == [src_tok.encode(f"hello , {name} !")] and 3 not in seen[0] and len(seen[0]) == 4
    assert capsys.readouterr().out == result + "\n"


@pytest.mark.parametrize("flags, message", [
    (["--heads", "3"], "divisible by --heads"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--dropout", "1.5"], "--dropout must be in"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--bidirectional", "--attention", "luong-dot"], "luong-general or luong-concat"),
])
def test_a_bad_flag_value_is_named(tmp_path, capsys, flags, message):
    fails_with(capsys, TINY + flags + ["--out", str(tmp_path / "r")], message)
    assert not (tmp_path / "r").exists()                         # nothing written


def test_an_overwritten_run_directory_starts_clean(tmp_path):
    _, out = run(tmp_path, "--max-steps", "3", "--no-plots")
    with open(os.path.join(out, "attention_7.png"), "wb") as f:
        f.write(b"an old plot")
    run(tmp_path, "--max-steps", "2", "--no-plots", "--overwrite")
    assert not os.path.exists(os.path.join(out, "attention_7.png"))
    assert [int(r["step"]) for r in history(out) if r["train_loss"]] == [1, 2]


def test_resuming_a_finished_run_trains_no_further_step(tmp_path):
    _, out = run(tmp_path, "--max-steps", "4", "--no-plots")
    before = checkpoint.load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    train.main(["--resume", out, "--no-progress", "--no-plots"])
    after = checkpoint.load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert before[2]["step"] == after[2]["step"] == 4
    for name in before[0]:
        np.testing.assert_array_equal(before[0][name], after[0][name])
