"""train.py under ``mpiexec -n 2``, launched from one pytest process (not marked ``mpi``:
it runs wherever mpi4py and an mpiexec are installed, and skips elsewhere).

- 2 ranks x half a batch train to the weights 1 process reaches on the whole batch
  (float32, so to rounding), for a Transformer and an RNN model;
- an interrupted 2-rank run resumes to the uninterrupted 2-rank run bit for bit;
- rank 0 alone writes files and prints; a rank that fails stops the job, no hang.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from test_mpi_launch import ROOT, launch, pytestmark  # noqa: F401  (the same skips)

sys.path.insert(0, ROOT)
from models import checkpoint  # noqa: E402

TRANSFORMER = ["--task", "reverse", "--num-pairs", "300", "--d-model", "16", "--heads", "2", "--layers", "1",
               "--ff", "32", "--batch-size", "16", "--lr", "3e-3", "--warmup", "2", "--max-steps", "8",
               "--eval-every", "4", "--checkpoint-every", "3", "--dropout", "0", "--no-progress", "--no-plots"]
GRU = ["--task", "reverse", "--num-pairs", "300", "--model", "gru", "--embed-dim", "8", "--hidden", "16",
       "--layers", "1", "--batch-size", "16", "--lr", "3e-3", "--warmup", "2", "--max-steps", "8",
       "--eval-every", "4", "--checkpoint-every", "3", "--dropout", "0", "--no-progress", "--no-plots"]


def train_on(argv, n=2, prelude=""):
    """train.main(argv) on n ranks; (exit status, output)."""
    return launch(f"{prelude}\nimport train\ntrain.main({argv!r})", n=n)


def train_alone(argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI_LOCAL"))}
    subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *argv], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)


def weights(out, name="checkpoint.safetensors"):
    return checkpoint.load_weights(os.path.join(out, name))


def assert_same_weights(two, one):
    """The 2-rank run's weights are the 1-process run's, to float32 rounding."""
    two, one = weights(two), weights(one)
    assert two.keys() == one.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=2e-4, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("flags", [TRANSFORMER, GRU], ids=["transformer", "gru"])
@pytest.mark.parametrize("optimizer", [["--optimizer", "adam"], ["--optimizer", "sgd", "--lr", "0.3"]],
                         ids=["adam", "sgd"])               # SGD: a gradient off by a factor shows
def test_two_ranks_train_to_the_weights_of_one_process(tmp_path, flags, optimizer):
    flags = flags + optimizer
    code, output = train_on(flags + ["--out", str(tmp_path / "two")])
    assert code == 0, output
    train_alone(flags + ["--out", str(tmp_path / "one")])
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two.keys() == one.keys()
    for name in one:
        a, b = two[name], one[name]
        if name.endswith("self_attn.in_proj_bias") or name.endswith("multihead_attn.in_proj_bias"):
            # The key bias: its gradient is 0 in exact arithmetic (softmax ignores a constant
            # added to every score of a row), so Adam's m / sqrt(v) turns rounding noise of
            # ~1e-9 into steps whose sign depends on the order of summation. Left out here.
            E = len(a) // 3
            a, b = np.delete(a, np.s_[E:2 * E]), np.delete(b, np.s_[E:2 * E])
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=name)


def test_only_rank_0_writes_and_prints(tmp_path):
    code, output = train_on(GRU + ["--out", str(tmp_path / "run")])
    assert code == 0, output
    assert output.count("valid (epoch") == 2                    # steps 4 and 8, once each
    assert "x 2 processes" in output and output.count("test split") == 1
    assert sorted(os.listdir(tmp_path / "run")) == sorted(
        ["checkpoint.safetensors", "config.json", "history.csv", "metrics.json", "model.safetensors", "samples.txt"])


def test_an_interrupted_two_rank_run_resumes_to_the_uninterrupted_one(tmp_path):
    flags = GRU + ["--dropout", "0.3"]
    code, output = train_on(flags + ["--out", str(tmp_path / "whole")])
    assert code == 0, output
    interrupt = ("import train\nreal = train.step_seed\n"
                 "def stop_at_7(seed, step, rank=0):\n"
                 "    if step == 7:\n        raise KeyboardInterrupt\n"
                 "    return real(seed, step, rank)\n"
                 "train.step_seed = stop_at_7")
    code, output = train_on(flags + ["--out", str(tmp_path / "parts")], prelude=interrupt)
    assert code == 130, output
    assert output.count("interrupted at step 7") == 1
    code, output = train_on(["--resume", str(tmp_path / "parts"), "--no-progress"])
    assert code == 0, output
    for name in ("checkpoint.safetensors", "model.safetensors"):
        a, b = weights(tmp_path / "whole", name), weights(tmp_path / "parts", name)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")


def test_a_user_error_ends_every_rank_with_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    code, output = train_on(GRU + ["--out", str(tmp_path / "file")])
    assert code == 2, output
    assert output.count("train.py: error:") == 1 and "is a file" in output


def test_a_rank_that_fails_stops_the_job(tmp_path):
    crash = ("import train\nfrom minigrad import distributed as dist\nreal = train.step_seed\n"
             "def crash_on_rank_1(seed, step, rank=0):\n"
             "    if step == 3 and dist.get_rank() == 1:\n        raise RuntimeError('rank 1 broke down')\n"
             "    return real(seed, step, rank)\n"
             "train.step_seed = crash_on_rank_1")
    code, output = train_on(GRU + ["--out", str(tmp_path / "run")], prelude=crash)   # launch() fails on a hang
    assert code != 0
    assert "rank 1 broke down" in output


def test_a_batch_smaller_than_the_world_leaves_a_rank_without_rows(tmp_path):
    """303 pairs at --batch-size 16: each epoch has one batch of a single pair (steps 16 and
    28 here), so rank 0 holds no row at those steps. It still joins the all-reduce with
    zeros, and the run reaches the one-process weights (SGD: a gradient off by a factor shows)."""
    flags = [f if f != "300" else "303" for f in GRU] + ["--optimizer", "sgd", "--lr", "0.3"]
    flags[flags.index("--max-steps") + 1] = "20"
    code, output = train_on(flags + ["--out", str(tmp_path / "two")])
    assert code == 0, output
    train_alone(flags + ["--out", str(tmp_path / "one")])
    assert_same_weights(tmp_path / "two", tmp_path / "one")


def test_progress_lines_of_a_two_rank_run_come_from_rank_0_alone(tmp_path):
    """Without --no-progress and with output to a pipe, rank 0 prints a line every
    --log-every steps; the log's window reads (collectives) stay in step on both ranks."""
    flags = [f for f in TRANSFORMER if f != "--no-progress"] + ["--log-every", "2"]
    code, output = train_on(flags + ["--out", str(tmp_path / "run")])
    assert code == 0, output
    assert [line.split(":")[0] for line in output.splitlines() if line.startswith("step ")] == \
        ["step 2/8", "step 4/8", "step 6/8", "step 8/8"]


LM_LINES = ["the cat sat on the mat", "the dog sat on the log", "a bird sang in the tree",
            "the fish swam in the pond", "a cow ate the green grass", "the sun rose over the hill"] * 12
GPT = ["--model", "gpt", "--layers", "1", "--heads", "2", "--d-model", "16", "--block-size", "16",
       "--batch-size", "6", "--max-steps", "6", "--eval-every", "3"]
BERT = ["--model", "bert", "--layers", "1", "--heads", "2", "--d-model", "16", "--ff", "32", "--block-size", "24",
        "--batch-size", "6", "--max-steps", "6", "--eval-every", "3", "--valid-share", "0.1", "--test-share", "0.1"]


@pytest.mark.parametrize("flags", [GPT, BERT], ids=["gpt", "bert"])
def test_two_ranks_train_gpt_and_bert_to_the_weights_of_one_process(tmp_path, flags):
    """The language models' objectives under mpiexec: each rank's rows of the windows (GPT)
    or sentence pairs (BERT), its loss over the whole batch's token, masked-position and
    pair counts; SGD, so a gradient off by a factor would show."""
    text = tmp_path / "tiny.txt"
    text.write_text("\n".join(LM_LINES) + "\n", encoding="utf-8")
    flags = flags + ["--text", str(text), "--optimizer", "sgd", "--lr", "0.3", "--warmup", "1", "--dropout", "0",
                     "--no-progress", "--no-plots"]
    code, output = train_on(flags + ["--out", str(tmp_path / "two")])
    assert code == 0, output
    train_alone(flags + ["--out", str(tmp_path / "one")])
    assert_same_weights(tmp_path / "two", tmp_path / "one")
