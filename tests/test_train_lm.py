"""train.py --model gpt and --model bert: a tiny run on a tiny text learns and leaves its
files and metrics, resumes to the uninterrupted run, and --generate / --fill use it."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from helpers import interrupt_at_step  # noqa: E402
from models import checkpoint  # noqa: E402

LINES = ["the cat sat on the mat", "the dog sat on the log", "a bird sang in the tree",
         "the fish swam in the pond", "a cow ate the green grass", "the sun rose over the hill"]
GPT = ["--model", "gpt", "--layers", "1", "--heads", "2", "--d-model", "16", "--block-size", "16",
       "--batch-size", "4", "--lr", "1e-2", "--warmup", "2", "--no-progress", "--max-steps", "12",
       "--eval-every", "6", "--checkpoint-every", "4"]
BERT = ["--model", "bert", "--layers", "1", "--heads", "2", "--d-model", "16", "--ff", "32", "--block-size", "24",
        "--batch-size", "4", "--lr", "1e-2", "--warmup", "2", "--no-progress", "--max-steps", "12",
        "--eval-every", "6", "--checkpoint-every", "4", "--valid-share", "0.1", "--test-share", "0.1"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text("\n".join(LINES * 12) + "\n", encoding="utf-8")
    return str(path)


def weights(path):
    return checkpoint.load_weights(path)


@pytest.mark.parametrize("kind, flags, keys", [
    ("gpt", GPT, {"loss", "perplexity", "bits_per_char"}),
    ("bert", BERT, {"loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy", "mlm_unigram_accuracy"}),
])
def test_a_tiny_run_leaves_its_files_and_the_metrics_of_its_field(tmp_path, text_file, kind, flags, keys):
    out = tmp_path / kind
    metrics = train.main(flags + ["--text", text_file, "--out", str(out)])
    saved = json.load(open(out / "metrics.json"))
    assert keys <= set(saved) and saved["loss"] == pytest.approx(metrics["loss"])
    assert all(np.isfinite(saved[k]) for k in keys)
    for name in ("model.safetensors", "checkpoint.safetensors", "config.json", "history.csv", "samples.txt",
                 "curves.png"):
        assert os.path.getsize(out / name) > 0, name
    history = [json.dumps(r) for r in checkpoint.load_checkpoint(str(out / "checkpoint.safetensors"))[2]["history"]]
    assert sum('"valid_loss"' in r for r in history) == 2                     # steps 6 and 12


@pytest.mark.parametrize("kind, flags", [("gpt", GPT), ("bert", BERT)])
def test_resume_reaches_the_uninterrupted_run(tmp_path, monkeypatch, text_file, kind, flags):
    flags = flags + ["--text", text_file, "--dropout", "0.1", "--no-plots"]
    train.main(flags + ["--out", str(tmp_path / "whole")])
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, train, 9)
        with pytest.raises(SystemExit):
            train.main(flags + ["--out", str(tmp_path / "parts")])
    train.main(["--resume", str(tmp_path / "parts"), "--no-progress"])
    for name in ("model.safetensors", "checkpoint.safetensors"):
        a, b = weights(str(tmp_path / "whole" / name)), weights(str(tmp_path / "parts" / name))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")
    assert (tmp_path / "whole" / "samples.txt").read_text() == (tmp_path / "parts" / "samples.txt").read_text()


def test_a_gpt_language_model_learns_the_tiny_text(tmp_path, text_file):
    metrics = train.main(GPT[:-6] + ["--d-model", "32", "--block-size", "64", "--batch-size", "8", "--warmup", "10",
                                     "--max-steps", "200",
                                     "--text", text_file, "--no-plots", "--out", str(tmp_path / "run")])
    assert metrics["loss"] < 0.5                   # from ln(V) ~ 3.3 nats at the start


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory, text_file):
    out = tmp_path_factory.mktemp("gpt") / "run"
    train.main(GPT + ["--text", text_file, "--out", str(out), "--no-plots"])
    return str(out)


def test_generate_continues_prompts_and_is_seeded(gpt_run, capsys, monkeypatch):
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("the cat\na bird\n"))
    capsys.readouterr()
    outputs = train.main(["--generate", "-", "--run", gpt_run, "--max-new-tokens", "10", "--top-k", "5"])
    assert [o[:len(p)] for o, p in zip(outputs, ["the cat", "a bird"])] == ["the cat", "a bird"]
    assert all(len(o) <= len(p) + 10 for o, p in zip(outputs, ["the cat", "a bird"]))
    greedy = [train.main(["--generate", "the cat", "--run", gpt_run, "--temperature", "0", "--max-new-tokens", "10"])
              for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_generate_reads_more_prompts_than_a_batch_in_batches(gpt_run, capsys, monkeypatch):
    """--batch-size 4 (the run's) and ten prompts: three batches; each greedy
    continuation is the one the prompt gets alone."""
    import io
    prompts = [line[:n] for line in LINES for n in (5, 9)][:10]
    from models.objectives.language_model import LanguageModel
    sizes, real = [], LanguageModel.generate

    def recorded(self, model, chunk, *rest):
        sizes.append(len(chunk))
        return real(self, model, chunk, *rest)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(prompts) + "\n"))
    with monkeypatch.context() as patch:
        patch.setattr(LanguageModel, "generate", recorded)
        together = train.main(["--generate", "-", "--run", gpt_run, "--temperature", "0", "--max-new-tokens", "6"])
    assert sizes == [4, 4, 2]
    alone = [train.main(["--generate", p, "--run", gpt_run, "--temperature", "0", "--max-new-tokens", "6"])
             for p in prompts]                                    # one prompt: its line, not a list
    assert together == alone and len(together) == 10


def test_bert_segments_can_be_sentences(tmp_path, capsys):
    """--segment sentence: the pairs are made of the text's sentences, not its lines
    (here each line holds two sentences, so there are twice as many segments)."""
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(f"The {a} sat on the mat. A {b} sang in the tree." for a, b in
                              [("cat", "bird"), ("dog", "crow"), ("cow", "lark")] * 12) + "\n", encoding="utf-8")
    for unit in ("line", "sentence"):
        train.main(BERT + ["--text", str(text), "--segment", unit, "--max-steps", "2", "--no-plots",
                           "--out", str(tmp_path / unit)])
    config = json.load(open(tmp_path / "sentence" / "config.json"))
    assert config["segment"] == "sentence"
    from models.config import config_from_json
    from models.objectives import make_objective
    counts = {}
    for unit in ("line", "sentence"):
        values = json.load(open(tmp_path / unit / "config.json"))
        tokenizers = values.pop("tokenizers")
        values.pop("data_sha256")
        counts[unit] = make_objective(config_from_json(values), tokenizers).pairs["train"].num_segments
    assert counts["sentence"] == 2 * counts["line"]


def test_generate_and_fill_refuse_the_other_kind_of_run(gpt_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--fill", "the [MASK] sat", "--run", gpt_run])
    assert exit_info.value.code == 2
    assert "masked lm" in capsys.readouterr().err


def test_fill_fills_each_mask(tmp_path, text_file, capsys):
    out = str(tmp_path / "bert")
    train.main(BERT + ["--text", text_file, "--out", out, "--no-plots"])
    capsys.readouterr()
    result = train.main(["--fill", "the [MASK] sat on the [MASK]", "--run", out])
    assert "[MASK]" not in result.split("    (")[0] and result.count(";") >= 1
    with pytest.raises(SystemExit):
        train.main(["--fill", "no mask here", "--run", out])
    assert "no [MASK] to fill" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--model", "gpt", "--data", "pairs.tsv"], "--data is a parallel corpus for seq2seq models"),
    (["--model", "gpt", "--text", "/no/such/file.txt"], "file.txt"),
])
def test_language_model_mistakes_are_one_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        train.main(flags + ["--out", str(tmp_path / "run"), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
