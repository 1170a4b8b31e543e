"""How the cost of a training step grows: minigrad and PyTorch (CPU) side by side.

Four sweeps, each point one training step (forward, backward, Adam; float32) of the
same model with the same weights in both frameworks, timed as train_step.py does
(alternating step by step in one process, median of ``--repeat`` steps after
``--warmup``), and its peak memory (train_step.py's measures: tracemalloc for
minigrad, the profiler's allocator total for PyTorch):

    transformer vs T    a GPT (models/gpt.py: 2 layers, 4 heads, d_model 128,
                        vocabulary 65), batch 8, sequence length T = 32 ... 512: the
                        linear layers grow as T, the attention scores as T^2
    transformer vs D    the same at T = 128, d_model D = 64 ... 512: the products
                        grow as D^2 (and T D for the attention)
    lstm vs H           an LSTM language model (Embedding(1000, H), LSTM(H, H), Linear(H,
                        1000)), batch 32, T = 32, hidden size H = 64 ... 1024: as H^2
    lstm vs T           the same at H = 256, T = 16 ... 256: as T

For each curve the exponent k of cost ~ size^k is fitted by least squares on the
log-log points (all points, and the largest three, where the leading term
dominates), and written in the plots' legends and in the printed table. Plots:
``docs/cost_transformer.png`` and ``docs/cost_lstm.png`` (two panels each:
step time and peak memory, both frameworks, log-log).

    python benchmarks/cost_curves.py                  # ~10 minutes on 2 idle cores
    python benchmarks/cost_curves.py --repeat 3 --sweeps lstm_T
"""
import argparse
import gc
import os
import sys

# Threads: as train_step.py, every CPU unless OMP/OPENBLAS/MKL_NUM_THREADS say otherwise
# (set before NumPy and PyTorch load); the same count for both frameworks.
if __name__ == "__main__" and "--threads" in sys.argv:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = sys.argv[sys.argv.index("--threads") + 1]

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCHMARKS))
sys.path.insert(0, BENCHMARKS)

import numpy as np        # noqa: E402

import minigrad as mg     # noqa: E402
import train_step         # noqa: E402  (the timing, memory and the twins)
from minigrad import blas, nn, optim  # noqa: E402
from minigrad.allocator import reuse_freed_memory  # noqa: E402

torch = train_step.torch
RESULTS = os.path.join(os.path.dirname(BENCHMARKS), "docs")      # docs/*.png are tracked
LSTM_VOCAB = 1000

SWEEPS = {   # name -> (model kind, swept size, the values, the fixed sizes)
    "transformer_T": ("gpt", "T", [32, 64, 128, 256, 512], dict(B=8, D=128)),
    "transformer_D": ("gpt", "D", [64, 128, 256, 512], dict(B=8, T=128)),
    "lstm_H": ("lstm", "H", [64, 128, 256, 512, 1024], dict(B=32, T=32)),
    "lstm_T": ("lstm", "T", [16, 32, 64, 128, 256], dict(B=32, H=256)),
}


# --------------------------------------------------------------------------- #
# The models at a given size, in both frameworks
# --------------------------------------------------------------------------- #

def gpt_pair(B, T, D):
    from models.gpt import GPT, GPTConfig
    config = GPTConfig(vocab_size=train_step.GPT_VOCAB, block_size=T, n_layer=2, n_head=4, d_model=D)

    class MinigradGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = GPT(config)

        def forward(self, x, y):
            logits = self.model(x)                                           # (B, T, V)
            return mg.cross_entropy(logits.reshape(-1, config.vocab_size), y.reshape(-1))

    def batch(rng):
        windows = rng.integers(0, config.vocab_size, (B, T + 1))            # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]

    return MinigradGPT, (lambda: train_step.TorchGPT(config)), batch


def lstm_pair(B, T, H):
    class MinigradLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(LSTM_VOCAB, H)
            self.lstm = nn.LSTM(H, H, batch_first=True)
            self.out = nn.Linear(H, LSTM_VOCAB)

        def forward(self, x, y):
            h, _ = self.lstm(self.embed(x))                                  # (B, T, H)
            return mg.cross_entropy(self.out(h).reshape(-1, LSTM_VOCAB), y.reshape(-1))

    class TorchLSTM(train_step.TorchModule):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(LSTM_VOCAB, H)
            self.lstm = torch.nn.LSTM(H, H, batch_first=True)
            self.out = torch.nn.Linear(H, LSTM_VOCAB)

        def forward(self, x, y):
            h, _ = self.lstm(self.embed(x))                                  # (B, T, H)
            return torch.nn.functional.cross_entropy(self.out(h).reshape(-1, LSTM_VOCAB), y.reshape(-1))

    def batch(rng):
        tokens = rng.integers(0, LSTM_VOCAB, (B, T + 1))                     # (B, T + 1)
        return tokens[:, :-1], tokens[:, 1:]

    return MinigradLSTM, TorchLSTM, batch


def measure(kind, sizes, warmup, repeat):
    """{"ms": {label: median ms}, "mb": {label: peak MB}} of one point."""
    minigrad_model, torch_model, batch = (gpt_pair if kind == "gpt" else lstm_pair)(**sizes)
    workload = train_step.Workload(kind, "", batch, minigrad_model, train_step.minigrad_tensors,
                                   torch_model, train_step.torch_tensors)
    trainers = train_step.build_trainers(workload, with_torch=torch is not None)
    train_step.check_same_math(workload, trainers)
    gc.collect()
    gc.freeze()
    try:
        medians = train_step.timed_medians(trainers, warmup, repeat)
        peaks = {"minigrad": train_step.minigrad_peak_bytes(trainers["minigrad"])}
        if "PyTorch" in trainers:
            peaks["PyTorch"] = train_step.torch_peak_bytes(trainers["PyTorch"])
    finally:
        gc.unfreeze()
    return {"ms": {k: v * 1e3 for k, v in medians.items()},
            "mb": {k: (None if v is None else v / 1e6) for k, v in peaks.items()}}


def exponent(xs, ys):
    """The slope of log y against log x (least squares), or None with fewer than 2 points."""
    points = [(x, y) for x, y in zip(xs, ys) if y]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated, from {','.join(SWEEPS)}")
    parser.add_argument("--repeat", type=int, default=5, help="timed steps per point and framework (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    parser.add_argument("--no-plots", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    args.sweeps = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    unknown = [s for s in args.sweeps if s not in SWEEPS]
    if unknown or not args.sweeps:
        parser.error(f"--sweeps: expected names from {', '.join(SWEEPS)}, got {args.sweeps}")
    return args


def run_sweep(name, warmup, repeat):
    kind, swept, values, fixed = SWEEPS[name]
    points = []
    for value in values:
        point = measure(kind, dict(fixed, **{swept: value}), warmup, repeat)
        points.append(point)
        cells = "; ".join(f"{label} {point['ms'][label]:.1f} ms, {point['mb'][label] or float('nan'):.1f} MB"
                          for label in point["ms"])
        print(f"  {name} {swept}={value}: {cells}", flush=True)
    return {"values": values, "points": points}


def fits(result, metric, label):
    ys = [p[metric].get(label) for p in result["points"]]
    return exponent(result["values"], ys), exponent(result["values"][-3:], ys[-3:])


def print_table(results):
    print("\n| sweep | metric | framework | values | exponent (all) | exponent (last 3) |")
    print("|---|---|---|---|---:|---:|")
    for name, result in results.items():
        _, swept, values, _ = SWEEPS[name]
        for metric, unit in (("ms", "ms"), ("mb", "MB")):
            for label in result["points"][0][metric]:
                ys = [p[metric][label] for p in result["points"]]
                shown = ", ".join("n/a" if y is None else f"{y:.1f}" for y in ys)
                k_all, k_last = fits(result, metric, label)
                text = [("n/a" if k is None else f"{k:.2f}") for k in (k_all, k_last)]
                print(f"| {name} ({swept} = {', '.join(map(str, values))}) | {unit} | {label} | {shown} | "
                      f"{text[0]} | {text[1]} |")


def plot(results, kind, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n in results if SWEEPS[n][0] == kind]
    if not names:
        return
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.4), squeeze=False)
    styles = {"minigrad": dict(color="tab:blue", marker="o"), "PyTorch": dict(color="tab:orange", marker="s")}
    for column, name in enumerate(names):
        _, swept, values, fixed = SWEEPS[name]
        for row, (metric, ylabel) in enumerate((("ms", "step time (ms)"), ("mb", "peak memory (MB)"))):
            ax = axes[row][column]
            for label in results[name]["points"][0][metric]:
                ys = [p[metric][label] for p in results[name]["points"]]
                if any(y is None for y in ys):
                    continue
                k_all, k_last = fits(results[name], metric, label)
                ax.plot(values, ys, label=f"{label}: k = {k_all:.2f} (last 3: {k_last:.2f})", **styles[label])
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(values)
            ax.set_xticklabels([str(v) for v in values])
            ax.set_xlabel(f"{swept}  ({', '.join(f'{k} {v}' for k, v in fixed.items())})")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    title = {"gpt": "Transformer (GPT, 2 layers, 4 heads) training step",
             "lstm": "LSTM language model training step"}[kind]
    fig.suptitle(f"{title}: cost ~ size^k, k fitted on log-log points", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    reuse_freed_memory()
    print("# cost curves: minigrad and PyTorch (CPU)\n")
    print(f"- {train_step.cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas.use_widest_kernels()}")
    print(f"- {args.threads} threads each; median of {args.repeat} steps after {args.warmup}, alternating; "
          f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if torch is not None:
        torch.set_num_threads(args.threads)
    results = {name: run_sweep(name, args.warmup, args.repeat) for name in args.sweeps}
    print_table(results)
    if not args.no_plots:
        plot(results, "gpt", os.path.join(RESULTS, "cost_transformer.png"))
        plot(results, "lstm", os.path.join(RESULTS, "cost_lstm.png"))
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
