"""End to end: train.py's training loop against a PyTorch twin of the whole loop, tokens/s.

Recipes (train.py's own defaults for each):

    dates   python train.py                the default run: Transformer 2+2 layers, d 128,
                                           4 heads, feed-forward 256, dropout 0.1, on the
                                           dates task (character tokens, 64 pairs a batch);
                                           Adam (0.9, 0.98), lr 2e-3, cosine schedule with 100
                                           warm-up steps, gradient norm clipped to 1
    gpt     python train.py --model gpt    GPT, 4 layers, d 128, 4 heads, block 64, dropout 0,
                                           on the built-in corpus (character tokens, 12
                                           windows a batch); AdamW (0.9, 0.99), weight decay
                                           0.1 on the matrices, cosine to 1e-4 after 100
                                           warm-up steps, clipped to 1: nanoGPT's CPU recipe

What each side runs at every step, train.py's loop (minigrad's side calls train.py's
own functions: its config, objective, model, optimizer and schedule):

    batch = objective.train_batch(step)    train.py's data pipeline, the same batch on
                                           both sides (its time is counted on both)
    loss  = the objective's loss           (forward); zero_grad; backward
    clip the gradient norm; optimizer step; schedule step

PyTorch's twin: the same model from torch.nn (benchmarks/train_step.py's twins, the same
parameter names, minigrad's initial weights loaded), torch.optim.Adam/AdamW with the
same parameter groups, torch.nn.utils.clip_grad_norm_, and the same schedule formula
(LambdaLR over minigrad's ``lr_at``). Validation, checkpoints and logging are left out
on both sides: train.py runs them every epoch or every 250 steps, and they are not the
training loop. Before timing, each recipe trains CHECK_STEPS steps with dropout 0 on
both sides and the losses must agree (1e-4 relative).

Timing: the frameworks alternate step by step in one process (as train_step.py), the
garbage collector runs untimed before each step; the median of ``--steps`` steps after
``--warmup``. tokens/s = the batch's target tokens (without padding) / the median step:
the figure train.py prints. With ``--train-py`` the script also runs ``python train.py``
itself for ``--steps`` steps (a child process, validation only at the end) and prints
its own tokens/s (the median of its history.csv windows) beside; the child inherits the
BLAS kernels of this process (``use_widest_kernels`` leaves OPENBLAS_CORETYPE set).

    python benchmarks/end_to_end.py                         # both recipes, a few minutes
    python benchmarks/end_to_end.py --recipes gpt --steps 60 --train-py
"""
import argparse
import csv
import dataclasses
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

RECIPES = {"dates": [], "gpt": ["--model", "gpt"]}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default="dates,gpt", help="comma-separated, from dates,gpt")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per framework (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per framework first (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    parser.add_argument("--blas-as-loaded", action="store_true",
                        help="keep the BLAS kernels OpenBLAS chose (default: use_widest_kernels())")
    parser.add_argument("--train-py", action="store_true",
                        help="also run python train.py itself for --steps steps and print its tokens/s")
    args = parser.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown or not args.recipes:
        parser.error(f"--recipes: expected names from {', '.join(RECIPES)}, got {args.recipes}")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1, --warmup at least 0")
    return args


# The thread counts must be in the environment before NumPy and PyTorch are loaded.
if __name__ == "__main__":
    threads = str(parse_args().threads)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = threads

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHMARKS)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCHMARKS)

import numpy as np        # noqa: E402

import minigrad as mg     # noqa: E402
import train              # noqa: E402
from minigrad import blas, optim  # noqa: E402
from minigrad.allocator import reuse_freed_memory  # noqa: E402
from models.objectives import make_objective  # noqa: E402

import train_step         # noqa: E402  (the twins)

torch = train_step.torch
CHECK_STEPS = 3
LOSS_RTOL = 1e-4


# --------------------------------------------------------------------------- #
# The two loops
# --------------------------------------------------------------------------- #

def recipe_config(name, total_steps, **overrides):
    parsed, _ = train.parse_args(RECIPES[name] + ["--max-steps", str(total_steps)])
    return dataclasses.replace(train.new_config(parsed), **overrides)


class MinigradLoop:
    """train.py's training step (train.train's loop body, without logging and validation)."""

    def __init__(self, config, objective):
        self.config, self.objective = config, objective
        mg.manual_seed(config.seed)
        self.model = objective.build_model()
        self.opt, self.schedule = train.make_optimizer(config, self.model, objective.total_steps())
        self.params = list(self.model.parameters())
        self.model.train()

    def step(self, step):
        mg.manual_seed(train.step_seed(self.config.seed, step))
        batch = self.objective.train_batch(step)
        counts = self.objective.counts(batch)
        loss = self.objective.loss(self.model, batch, counts)
        self.opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(self.params, self.config.clip)
        self.opt.step()
        self.schedule.step()
        return loss.item(), counts["tokens"]


class TorchLoop:
    """The same loop in PyTorch: the same batches, the twin model with minigrad's weights."""

    def __init__(self, config, objective, mine):
        self.config, self.objective = config, objective
        if config.model == "gpt":
            self.model = train_step.TorchGPT(mine.model.config)
            state = {f"model.{k}": v for k, v in mine.model.state_dict().items()}
        else:
            self.model = train_step.TorchSeq2SeqTransformer(config, objective.src_tok.vocab_size,
                                                            objective.tgt_tok.vocab_size, config.dropout)
            state = mine.model.state_dict()
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        # the parameter groups of train.make_optimizer: weight decay on matrices only
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.opt = kind(groups, lr=config.lr, betas=(0.9, config.beta2))
        lr_at = mine.schedule.lr_at                       # the schedule's formula: step t = e + 1
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda e: lr_at(e + 1, config.lr) / config.lr)
        self.model.train()

    def loss(self, batch):
        if self.config.model == "gpt":
            x, y = torch.from_numpy(batch.x), torch.from_numpy(batch.y)
            return self.model(x, y)
        src, lengths, tgt_in, tgt_out = (torch.from_numpy(np.asarray(a)) for a in
                                         (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out))
        logits = self.model(src, lengths, tgt_in)                            # (B, T, V)
        total = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                                  ignore_index=train_step.PAD, reduction="sum")
        return total / batch.num_tokens

    def step(self, step):
        torch.manual_seed(step)
        batch = self.objective.train_batch(step)
        loss = self.loss(batch)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.opt.step()
        self.schedule.step()
        return loss.item(), batch.num_tokens


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #

def check_same_math(name, total):
    """CHECK_STEPS steps of both loops with dropout 0: their losses must agree."""
    config = recipe_config(name, total, dropout=0.0)
    objective = make_objective(config)
    mine = MinigradLoop(config, objective)
    theirs = TorchLoop(config, objective, mine)
    for step in range(CHECK_STEPS):
        a, _ = mine.step(step)
        b, _ = theirs.step(step)
        if abs(a - b) > LOSS_RTOL * abs(b):
            raise SystemExit(f"{name}: step {step}: minigrad loss {a!r}, PyTorch {b!r}: the loops differ")
    return CHECK_STEPS


def time_recipe(name, steps, warmup):
    total = warmup + steps
    check_same_math(name, total)
    config = recipe_config(name, total)
    objective = make_objective(config)
    loops = {"minigrad": MinigradLoop(config, objective)}
    loops["PyTorch"] = TorchLoop(config, objective, loops["minigrad"])
    gc.collect()
    gc.freeze()
    seconds = {label: [] for label in loops}
    tokens = []
    try:
        for step in range(total):
            for label, loop in loops.items():
                gc.collect()
                start = time.perf_counter()
                _, count = loop.step(step)
                elapsed = time.perf_counter() - start
                if step >= warmup:
                    seconds[label].append(elapsed)
            if step >= warmup:
                tokens.append(count)
    finally:
        gc.unfreeze()
    rates = {label: sum(tokens) / sum(s) for label, s in seconds.items()}
    medians = {label: statistics.median(s) for label, s in seconds.items()}
    return {"config": config, "medians": medians, "tokens_per_s": rates, "objective": objective}


def train_py_tokens_per_s(name, steps):
    """``python train.py`` itself for ``steps`` steps: the median tokens/s of its history."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, os.path.join(ROOT, "train.py"), *RECIPES[name], "--max-steps", str(steps),
                   "--out", out, "--no-progress", "--no-plots", "--log-every", "10", "--eval-every", str(steps)]
        if name == "dates":              # epochs: --max-steps bounds the run
            command += ["--epochs", "1"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        with open(os.path.join(out, "history.csv")) as f:
            rates = [float(row["tokens_per_s"]) for row in csv.DictReader(f) if row.get("tokens_per_s")]
    return statistics.median(rates) if rates else None


def main(argv=None):
    args = parse_args(argv)
    if torch is None:
        raise SystemExit("end_to_end.py compares with PyTorch: install a CPU wheel of torch")
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    blas_note = (f"kept as loaded: OpenBLAS {blas.openblas_core()}" if args.blas_as_loaded
                 else blas.use_widest_kernels())
    print("# train.py's loop against a PyTorch twin (CPU)\n")
    print(f"- {train_step.cpu_model()}, {os.cpu_count()} CPUs; NumPy {np.__version__}, PyTorch {torch.__version__}; "
          f"threads {args.threads}; BLAS: {blas_note}")
    print(f"- median of {args.steps} steps after {args.warmup}, alternating; validation left out on both sides")
    print(f"- load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    header = ["recipe", "minigrad ms", "PyTorch ms", "ratio", "minigrad tokens/s", "PyTorch tokens/s"]
    if args.train_py:
        header.append("train.py tokens/s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for name in args.recipes:
        result = time_recipe(name, args.steps, args.warmup)
        m, t = result["medians"]["minigrad"], result["medians"]["PyTorch"]
        cells = [name, f"{m * 1e3:.1f}", f"{t * 1e3:.1f}", f"{m / t:.2f}x",
                 f"{result['tokens_per_s']['minigrad']:,.0f}", f"{result['tokens_per_s']['PyTorch']:,.0f}"]
        if args.train_py:
            rate = train_py_tokens_per_s(name, args.warmup + args.steps)
            cells.append("n/a" if rate is None else f"{rate:,.0f}")
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\ntokens/s: target tokens (without padding) over the timed steps' total time. "
          f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
