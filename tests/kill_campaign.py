"""A kill campaign: train.py is SIGKILLed at random moments and at chosen points, resumed
until it finishes, and every file it leaves is compared with an uninterrupted run's.

    python tests/kill_campaign.py --trials 30            # prints a table, exits 1 on a mismatch

Each trial starts the same small run (a GRU on the reverse task: two epochs, validation
at every epoch end and every 10 steps, a checkpoint every 7 steps, plots on) and kills
it either after a random delay (anywhere: data loading, a step, a checkpoint write, a
validation, the test, the plots) or, through a child process that SIGKILLs itself, at
a named point: right after the checkpoint of the last step, inside the test
evaluation, while metrics.json is written, while a PNG is drawn. Then it runs
``--resume`` (killed again at random in some trials) until the process exits 0, and
checks: the weights, optimizer state, trainer state and history (timings aside),
metrics.json, samples.txt are the uninterrupted run's, bit for bit; no ``.tmp`` file is
left; every PNG is a whole PNG.

``tests/test_train_kills.py`` runs a few trials of this in the suite.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUN = ["--task", "reverse", "--num-pairs", "600", "--model", "gru", "--embed-dim", "16", "--hidden", "32",
       "--layers", "1", "--batch-size", "32", "--lr", "1e-2", "--warmup", "5", "--epochs", "2",
       "--eval-every", "10", "--checkpoint-every", "7", "--dropout", "0.2", "--no-progress"]

#: name -> (module, function, which call): the child kills itself as that call begins.
POINTS = {
    "last-checkpoint": ("train", "finish", 1),            # after the last step's checkpoint
    "test-evaluation": ("models.objectives.translation", "Translation.evaluate", None),   # the split == "test" call
    "metrics": ("train", "save_json", 2),                 # 1 is config.json
    "plots": ("models.plots", "save_figure", 1),
    "attention-plot": ("models.plots", "save_figure", 2),
}


def child(point, argv):
    """Run train.main(argv) in this process, SIGKILLing it at ``point``."""
    sys.path.insert(0, ROOT)
    import importlib
    module_name, name, call = POINTS[point]
    module = importlib.import_module(module_name)
    owner = module
    if "." in name:
        class_name, name = name.split(".")
        owner = getattr(module, class_name)
    real = getattr(owner, name)
    calls = {"n": 0}

    def killer(*args, **kwargs):
        calls["n"] += 1
        is_test = call is None and "test" in args[2:3]
        if calls["n"] == call or is_test:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(owner, name, killer)
    import train
    train.main(argv)


def start(argv, point=None):
    cmd = [sys.executable] + ([__file__, "--child", point] if point else [os.path.join(ROOT, "train.py")]) + argv
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_to_the_end(out, rng, first_kill, max_rounds=12):
    """Start the run, kill it as ``first_kill`` says, then resume until it exits 0;
    resumes are themselves killed at random with probability 0.3. Returns the kills."""
    kills = 0
    argv = RUN + ["--out", out]
    kind, value = first_kill
    process = start(argv, point=value if kind == "point" else None)
    for _ in range(max_rounds):
        if kind == "delay":
            try:
                process.wait(timeout=value)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        code = process.wait()
        err = process.stderr.read().decode()
        if code == 0:
            return kills
        if code != -signal.SIGKILL:
            raise RuntimeError(f"train.py exited {code}: {err.strip()[-400:]}")
        kills += 1
        if os.path.exists(os.path.join(out, "config.json")):
            argv = ["--resume", out, "--no-progress"]
        kind, value = ("delay", rng.uniform(0.2, 6.0)) if rng.random() < 0.3 else ("none", None)
        process = start(argv)
    raise RuntimeError(f"no clean finish after {max_rounds} rounds")


def compare(reference, out):
    """A list of the differences between the two run directories (empty: identical)."""
    sys.path.insert(0, ROOT)
    import numpy as np
    from models import checkpoint
    problems = []
    timing = {"seconds", "tokens_per_s", "train_seconds"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in timing}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    a = checkpoint.load_checkpoint(os.path.join(reference, "checkpoint.safetensors"))
    b = checkpoint.load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    for k in a[0]:
        if not np.array_equal(a[0][k], b[0][k]):
            problems.append(f"checkpoint weight {k}")
    for index, entries in a[1]["state"].items():
        for k, v in entries.items():
            if not np.array_equal(np.asarray(v), np.asarray(b[1]["state"][index][k])):
                problems.append(f"optimizer state {index}.{k}")
    if strip(a[2]) != strip(b[2]):
        problems.append("trainer state / history")
    wa = checkpoint.load_weights(os.path.join(reference, "model.safetensors"))
    wb = checkpoint.load_weights(os.path.join(out, "model.safetensors"))
    if wa.keys() != wb.keys() or any(not np.array_equal(wa[k], wb[k]) for k in wa):
        problems.append("model.safetensors")
    for name in ("metrics.json",):
        if strip(json.load(open(os.path.join(reference, name)))) != strip(json.load(open(os.path.join(out, name)))):
            problems.append(name)
    if open(os.path.join(reference, "samples.txt")).read() != open(os.path.join(out, "samples.txt")).read():
        problems.append("samples.txt")
    for name in os.listdir(out):
        if name.endswith(".tmp"):
            problems.append(f"leftover {name}")
        if name.endswith(".png"):
            with open(os.path.join(out, name), "rb") as f:
                data = f.read()
            if not (data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")):
                problems.append(f"{name} is not a whole PNG")
    return problems


def campaign(trials, seed=0, workdir=None, log=print):
    """Run ``trials`` trials; returns a list of (trial, first kill, kills, problems)."""
    rng = random.Random(seed)
    workdir = workdir or tempfile.mkdtemp(prefix="kill-campaign-")
    reference = os.path.join(workdir, "reference")
    started = time.perf_counter()
    process = start(RUN + ["--out", reference])
    if process.wait() != 0:
        raise RuntimeError(process.stderr.read().decode())
    whole_seconds = time.perf_counter() - started
    results = []
    points = list(POINTS)
    for trial in range(trials):
        if trial < len(points):
            first = ("point", points[trial])
        else:
            first = ("delay", rng.uniform(0.5, 0.9 * whole_seconds))
        out = os.path.join(workdir, f"trial-{trial}")
        kills = run_to_the_end(out, rng, first)
        problems = compare(reference, out)
        results.append((trial, first, kills, problems))
        label = first[1] if first[0] == "point" else f"after {first[1]:.2f} s"
        log(f"trial {trial:2d}: killed {label:<22} {kills} kill(s), then resumed: "
            f"{'identical' if not problems else 'DIFFERENT: ' + ', '.join(problems)}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", metavar="POINT", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        return child(args.child, rest)
    results = campaign(args.trials, args.seed)
    kills = sum(r[2] for r in results)
    bad = [r for r in results if r[3]]
    print(f"\n{len(results)} trials, {kills} SIGKILLs in all, {len(results) - len(bad)} resumed to files identical "
          f"to the uninterrupted run's, {len(bad)} different")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
