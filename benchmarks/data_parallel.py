"""Data parallelism measured on this machine, and predicted for N machines.

    python benchmarks/data_parallel.py                  # needs the [mpi] extra
    python benchmarks/data_parallel.py --skip-measure   # the tables again, from the saved results

1. Measured here: train.py's default job (the Transformer on the date task, global batch
   64) as 1 process with 2 threads against 2 processes (``mpiexec -n 2``) with 1 thread
   each, tokens/s from history.csv (training steps only: the median over the logged
   windows after the first). The same for the default GPT job.
2. The all-reduce's share of a step: ``all_reduce_gradients`` timed under ``mpiexec -n 2``
   (benchmarks/allreduce.py's method) for each model kind's parameter count, against
   that model's measured step time on one rank.
3. On paper: N machines, each with one rank, joined by 10 or 100 Gbit/s links. A ring
   all-reduce of P float32 gradients sends and receives 2 (N - 1) / N * 4P bytes per
   rank, in 2 (N - 1) messages, so

       t_allreduce(N) = 2 (N - 1) / N * 4P / bandwidth + 2 (N - 1) * latency

   (latency 20 us on 10 Gbit/s Ethernet, 5 us on 100 Gbit/s InfiniBand: assumptions,
   said in the table). train.py's --batch-size is the global batch, so N ranks share a
   fixed amount of arithmetic (strong scaling): t_step(N) = t_compute(1) / N +
   t_allreduce(N), the speed-up t_step(1) / t_step(N) and the efficiency speed-up / N.
   Data parallelism stops paying where adding machines no longer shortens the step
   (the best N below), or earlier, where the efficiency falls under 50%.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

JOBS = {
    # name: (train.py flags, parameters counted from the run's own output)
    "transformer (date task)": ["--max-steps", "{steps}"],
    "gpt (built-in corpus)": ["--model", "gpt", "--max-steps", "{steps}", "--eval-every", "0"],
}
LINKS = {"10 Gbit/s Ethernet": (10e9 / 8, 20e-6), "100 Gbit/s InfiniBand": (100e9 / 8, 5e-6)}
RANKS = [2, 4, 8, 16, 32, 64]


def mpiexec():
    beside = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def clean_env(threads):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI_LOCAL"))}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_job(flags, ranks, threads, workdir):
    out = tempfile.mkdtemp(prefix=f"run-{ranks}x{threads}-", dir=workdir)       # a new one per job
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), *flags, "--out", out, "--no-progress", "--no-plots"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    result = subprocess.run(cmd, cwd=ROOT, env=clean_env(threads), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    with open(os.path.join(out, "history.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("tokens_per_s")]
    speeds = sorted({float(r["tokens_per_s"]) for r in rows})
    windows = [float(r["tokens_per_s"]) for r in rows][10:] or speeds       # the first window warms up
    parameters = int(json.load(open(os.path.join(out, "metrics.json")))["parameters"])
    return float(np.median(windows)), parameters


def tokens_per_step(flags):
    """The mean tokens of a training step of the job (its objective's counts)."""
    sys.path.insert(0, ROOT)
    import train
    from models.objectives import make_objective
    args, _ = train.parse_args(flags)
    objective = make_objective(train.new_config(args))
    return float(np.mean([objective.counts(objective.train_batch(step))["tokens"] for step in range(20)]))


def allreduce_ms(parameters, repeats=20):
    """Median time of one all_reduce_gradients of ``parameters`` float32 values on 2
    ranks: benchmarks/allreduce.py run under mpiexec, its one table row read back."""
    cmd = [mpiexec(), "-n", "2", sys.executable, os.path.join(ROOT, "benchmarks", "allreduce.py"),
           "--sizes", str(parameters), "--repeats", str(repeats)]
    result = subprocess.run(cmd, cwd=ROOT, env=clean_env(1), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    for line in result.stdout.splitlines():
        cells = line.replace(",", "").split()       # parameters, MB, all_reduce_gradients, "ms", ...
        if len(cells) >= 4 and cells[0].isdigit() and cells[3] == "ms":
            return float(cells[2])
    raise RuntimeError(f"no figure in benchmarks/allreduce.py's output:\n{result.stdout}")


def predict(parameters, t_compute, bandwidth, latency):
    """[(N, step seconds, speed-up, efficiency)] for the ring all-reduce model above."""
    rows = []
    for n in RANKS:
        t_ar = 2 * (n - 1) / n * 4 * parameters / bandwidth + 2 * (n - 1) * latency
        t_step = t_compute / n + t_ar
        rows.append((n, t_step, t_compute / t_step, t_compute / t_step / n))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60, help="training steps per measured run (default 60)")
    p.add_argument("--skip-measure", action="store_true", help="print the tables of the results saved in --out "
                   "(measured before) without measuring")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "data_parallel.json"))
    args = p.parse_args(argv)
    if args.skip_measure:
        with open(args.out) as f:
            return print_tables(json.load(f))
    if mpiexec() is None:
        raise SystemExit('data_parallel.py: no mpiexec found: pip install -e ".[mpi]"')
    workdir = tempfile.mkdtemp(prefix="data-parallel-")
    results = {}
    for name, template in JOBS.items():
        flags = [f.format(steps=args.steps) for f in template]
        one, parameters = run_job(flags, 1, 2, workdir)
        two, _ = run_job(flags, 2, 1, workdir)
        t_compute = tokens_per_step(flags) / one          # one step's time on one rank, two threads
        ar = allreduce_ms(parameters) / 1e3
        results[name] = {"parameters": parameters, "tokens_per_s_1x2": one, "tokens_per_s_2x1": two,
                         "allreduce_ms_2_ranks": ar * 1e3, "step_ms_1_rank": t_compute * 1e3,
                         "allreduce_share_2_ranks": ar / (t_compute / 2 + ar),
                         "predicted": {link: predict(parameters, t_compute, bw, lat)
                                       for link, (bw, lat) in LINKS.items()}}
        print(f"{name}: {parameters:,} parameters; 1 rank x 2 threads {one:,.0f} tokens/s, "
              f"2 ranks x 1 thread {two:,.0f} tokens/s ({two / one:.2f}x); all-reduce {ar * 1e3:.1f} ms "
              f"against a {t_compute * 1e3:.0f} ms step", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print_tables(results)


def print_tables(results):
    for name, r in results.items():
        print(f"\n{name}, {r['parameters']:,} parameters, one-rank step {r['step_ms_1_rank']:.0f} ms "
              "(global batch fixed):\n")
        print("| N | " + " | ".join(f"{link}: step ms / speed-up / efficiency" for link in LINKS) + " |")
        print("|---:|" + "---:|" * len(LINKS))
        for i, n in enumerate(RANKS):
            cells = [f"{rows[i][1] * 1e3:.1f} / {rows[i][2]:.2f}x / {rows[i][3]:.0%}"
                     for rows in (r["predicted"][link] for link in LINKS)]
            print(f"| {n} | " + " | ".join(cells) + " |")
        for link in LINKS:
            rows = r["predicted"][link]
            best = min(rows, key=lambda row: row[1])
            half = [row[0] for row in rows if row[3] >= 0.5]
            print(f"\n{link}: the step is shortest at N = {best[0]} ({best[2]:.1f}x); efficiency stays at or "
                  f"above 50% up to N = {max(half) if half else 1}")


if __name__ == "__main__":
    main()
