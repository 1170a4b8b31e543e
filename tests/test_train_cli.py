"""The command line a user expects: every flag explained with its default, many inputs
from standard input or a file, detokenized corpus output and sacreBLEU's signature,
progress that suits a log file, validation that names its epoch and step."""
import io
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from models.objectives import translation  # noqa: E402

TINY = ["--task", "reverse", "--num-pairs", "400", "--model", "gru", "--embed-dim", "16", "--hidden", "32",
        "--layers", "1", "--batch-size", "32", "--lr", "1e-2", "--warmup", "5"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "run"
    train.main(TINY + ["--out", str(out), "--max-steps", "30", "--no-plots", "--no-progress"])
    return str(out)


def help_text(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    return capsys.readouterr().out


def test_help_explains_every_flag_and_its_default(capsys):
    text = help_text(capsys)
    flags = sorted(set(re.findall(r"^  (--[a-z0-9-]+)", text, flags=re.M)) - {"--help"})
    assert len(flags) > 50
    blocks = re.split(r"\n(?=  --)", text)
    for flag in flags:
        block = next(b for b in blocks if b.startswith(f"  {flag}"))
        words = re.sub(r"^  --[a-z0-9-]+( \S+)?", "", block).split()
        assert len(words) >= 3, f"{flag} has no explanation"
    parser = train.build_parser()
    for action in parser._actions:
        if action.default not in (None, False, "==SUPPRESS==") and action.help:
            assert "default" in " ".join(action.help.split()), f"{action.option_strings} hides its default"


def test_help_ends_with_the_usage_examples(capsys):
    text = help_text(capsys)
    assert text.rstrip().endswith(train.__doc__.split("\n\n")[1].rstrip().splitlines()[-1].strip())
    assert "examples:" in text and "--resume" in text.split("examples:")[1]


def test_translate_reads_many_lines_from_standard_input(saved, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n\nhello\nxyz\n"))
    capsys.readouterr()
    outputs = train.main(["--translate", "-", "--run", saved])
    assert len(outputs) == 3                                          # the blank line skipped
    assert capsys.readouterr().out.splitlines() == outputs
    one_by_one = [train.main(["--translate", text, "--run", saved]) for text in ("abc", "hello", "xyz")]
    assert outputs == one_by_one                                      # batching changes nothing


def test_translate_reads_a_file(saved, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("abc\nhello\n", encoding="utf-8")
    assert len(train.main(["--translate", f"@{path}", "--run", saved])) == 2
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--translate", f"@{tmp_path / 'missing.txt'}", "--run", saved])
    assert exit_info.value.code == 2


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    names = ["anna", "bob", "carl", "dora", "eve", "finn", "gus", "hana", "ivo", "jan", "kim", "lea"]
    rows = [f"Hello, {w}!\tBonjour, {w} ! C'est l'heure.\tCC-BY" for w in names]
    rows += [" ".join(["long"] * 20) + "\tCelle-ci aussi est bien trop longue pour rester"]
    path = tmp / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp / "run")
    train.main(["--data", str(path), "--tokenizer", "word", "--lowercase", "--split-punctuation",
                "--max-length", "12", "--valid-share", "0.2", "--test-share", "0.2", "--model", "gru",
                "--embed-dim", "8", "--hidden", "8", "--layers", "1", "--max-steps", "3", "--no-progress",
                "--no-plots", "--beam-size", "2", "--out", out])
    return out


def test_a_corpus_runs_metrics_name_the_bleu_and_the_decoding(corpus_run):
    metrics = json.load(open(os.path.join(corpus_run, "metrics.json")))
    assert metrics["bleu_signature"].startswith("nrefs:1|case:lc|eff:no|tok:13a")
    assert metrics["beam_size"] == 2 and metrics["length_penalty"] == 0.6
    samples = open(os.path.join(corpus_run, "samples.txt"), encoding="utf-8").read()
    references = [line for line in samples.splitlines() if line.startswith("reference:")]
    assert references and all("C'est l'heure." in r and "Bonjour," in r for r in references)   # as written


def test_corpus_output_is_detokenized(corpus_run, monkeypatch, capsys):
    _, objective, model = train.load_run(corpus_run, *train.parse_args([]))
    monkeypatch.setattr(objective.tgt_tok, "decode", lambda ids: "bonjour , c ' est l ' heure .")
    assert objective.translate(model, ["hello , anna !"]) == ["bonjour, c'est l'heure."]


def test_the_length_filter_count_is_printed(tmp_path, capsys):
    rows = [f"a{i}\tb{i}" for i in range(30)] + ["x y z w v\tq"] * 4
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    train.main(["--data", str(path), "--tokenizer", "word", "--max-length", "3", "--model", "gru", "--embed-dim",
                "8", "--hidden", "8", "--layers", "1", "--max-steps", "1", "--no-progress", "--no-plots",
                "--out", str(tmp_path / "run")])
    assert "(4 pairs outside the length range [1, 3] dropped)" in capsys.readouterr().out


def test_validation_lines_name_their_epoch_and_step_and_eval_every_adds_some(tmp_path, capsys):
    train.main(TINY + ["--out", str(tmp_path / "run"), "--epochs", "2", "--eval-every", "5", "--no-plots",
                       "--no-progress"])
    out = capsys.readouterr().out
    steps = [int(s) for s in re.findall(r"valid \(epoch \d+, step (\d+)\)", out)]
    assert steps == [5, 10, 12, 15, 20, 24]
    assert "valid (epoch 2, step 24)" in out


def test_a_log_file_gets_progress_lines_not_carriage_returns(tmp_path, capsys):
    train.main(TINY + ["--out", str(tmp_path / "run"), "--epochs", "2", "--log-every", "10", "--no-plots"])
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    lines = re.findall(r"^step (\d+)/24: loss [\d.]+, lr [\d.e+-]+, [\d,]+ tokens/s$", captured.out, flags=re.M)
    assert [int(s) for s in lines] == [10, 20]


def test_no_progress_prints_no_progress_lines(tmp_path, capsys):
    train.main(TINY + ["--out", str(tmp_path / "run"), "--epochs", "2", "--log-every", "10", "--no-plots",
                       "--no-progress"])
    assert "tokens/s" not in capsys.readouterr().out


def test_objective_tokens_match_the_translation_batch(saved):
    _, objective, _ = train.load_run(saved, *train.parse_args([]), load_data=True)
    batch = objective.train_batch(0)
    assert objective.counts(batch) == {"tokens": int(batch.tgt_lengths.sum())}
    assert isinstance(objective, translation.Translation)
