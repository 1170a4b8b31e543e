"""benchmarks/gpu_check.sh and benchmarks/gpu_benchmark.py on a machine without a GPU.

- the dry run (--dry-run: the CPU, small sizes) goes through every phase that needs no
  GPU and writes every file, with figures that make sense;
- without --dry-run and without a GPU it stops at once, in one line, exit status 2;
- the benchmark knows its workloads (Transformer-base at the paper's sizes), counts
  a host read in a step, and its comparison of train.py's runs tells agreement apart
  from difference.
"""
import csv
import json
import os
import subprocess
import sys

import pytest

import minigrad as mg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_benchmark  # noqa: E402

SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def gpu_here():
    return gpu_benchmark.gpu_reason() is None


def test_the_dry_run_goes_through_every_phase_and_writes_every_file(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run(["bash", SCRIPT, "--dry-run", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    for name in ["environment.json", "tests.txt", "compare.json", "benchmark.json", "summary.md"] + [
            f"train-{run}/{file}" for run in gpu_benchmark.RUNS for file in ("metrics.json", "history.csv")]:
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "environment.json").read_text())["dry_run"] is True
    assert "skipped" in (out / "tests.txt").read_text()                         # GPU tests, no GPU
    compared = json.loads((out / "compare.json").read_text())
    assert compared["float32 vs cpu-float32"]["agree"] and compared["float16 vs float32"]["agree"]
    rows = {row["workload"]: row for row in json.loads((out / "benchmark.json").read_text())["rows"]}
    assert set(rows) == {"TB", "TB16"} and not any("error" in row for row in rows.values())
    assert rows["TB16"]["precision"] == "float16" and rows["TB"]["syncs"]["minigrad"] == 0
    if rows["TB"]["torch_device"]:                                              # PyTorch installed
        assert rows["TB"]["agree"] is True and rows["TB"]["ratio"] > 0
    summary = (out / "summary.md").read_text()
    assert summary in done.stdout and "| TB16 " in summary and "float16 vs float32: agree" in summary


@pytest.mark.skipif(gpu_here(), reason="a GPU is here: the check would run")
def test_without_a_gpu_the_check_stops_in_one_line(tmp_path):
    done = subprocess.run(["bash", SCRIPT, str(tmp_path / "check")], capture_output=True, text=True, timeout=120)
    assert done.returncode == gpu_benchmark.NO_GPU_STATUS
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no GPU here (") and done.stdout == ""
    assert json.loads((tmp_path / "check" / "environment.json").read_text())["no_gpu_reason"]


def test_the_check_says_how_it_is_used():
    done = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR")


def test_the_benchmark_knows_its_workloads():
    chosen = gpu_benchmark.workloads(["W1", "W2", "W3", "TB", "TB16"], dry_run=False)
    assert [(w.name, precision) for w, precision in chosen] == [
        ("W1", "float32"), ("W2", "float32"), ("W3", "float32"), ("TB", "float32"), ("TB16", "float16")]
    vocab, batch, length, transformer = gpu_benchmark.TRANSFORMER_BASE
    assert (vocab, batch, length) == (32000, 64, 64)
    assert transformer == dict(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                               dim_feedforward=2048, dropout=0.0)
    src, tgt_in, tgt_out = chosen[3][0].make_batch(__import__("numpy").random.default_rng(0))
    assert src.shape == tgt_in.shape == tgt_out.shape == (64, 64) and src.max() < 32000


def test_the_sync_count_sees_a_host_read_in_a_step():
    tb, _ = gpu_benchmark.workloads(["TB"], dry_run=True)[0]

    class Reading(gpu_benchmark.Seq2SeqTransformer):
        def forward(self, *inputs):
            loss = super().forward(*inputs)
            float(loss)                                                       # a read inside the step
            return loss
    vocab, _, _, transformer = gpu_benchmark.TRANSFORMER_TINY
    tb.minigrad_model = lambda: Reading(vocab, **transformer)
    count, reads, verified = gpu_benchmark.minigrad_syncs(tb, "float32", "numpy")
    assert count == 1 and "copy to the host" in reads[0] and "test_gpu_check.py" in reads[0]
    assert mg.get_backend() == "numpy"


def write_run(directory, losses, token_accuracy):
    os.makedirs(directory)
    with open(os.path.join(directory, "history.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "train_loss", "tokens_per_s"])
        writer.writeheader()
        writer.writerows({"step": i + 1, "train_loss": x, "tokens_per_s": 1000.0} for i, x in enumerate(losses))
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        json.dump({"loss": losses[-1], "token_accuracy": token_accuracy, "exact_match": 0.5, "bleu": 50.0}, f)


def test_compare_tells_runs_that_agree_from_runs_that_differ(tmp_path, capsys):
    write_run(tmp_path / "train-cpu-float32", [2.0] * 60 + [1.00] * 50, 0.90)
    write_run(tmp_path / "train-float32", [2.0] * 60 + [1.05] * 50, 0.88)        # 5%, 0.02: agree
    write_run(tmp_path / "train-float16", [2.0] * 60 + [1.30] * 50, 0.88)        # 24% off: differ
    gpu_benchmark.compare(str(tmp_path), dry_run=False)
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["float32 vs cpu-float32"]["agree"] is True
    assert result["float16 vs float32"]["agree"] is False
    assert result["runs"]["float32"]["tail_loss"] == pytest.approx(1.05)
    assert "float16 vs float32: DIFFER" in capsys.readouterr().out
    os.remove(tmp_path / "train-float16" / "metrics.json")                      # a run that did not finish
    gpu_benchmark.compare(str(tmp_path), dry_run=False)
    assert json.loads((tmp_path / "compare.json").read_text())["float16 vs float32"] == {
        "agree": False, "why": "a run is missing"}
