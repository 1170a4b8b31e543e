"""GPT on nanoGPT's CPU recipe, minigrad against a PyTorch twin trained the same way.

    python benchmarks/gpt_recipe.py                      # the built-in corpus
    python benchmarks/gpt_recipe.py --text shakespeare.txt --steps 2000

The recipe (nanoGPT's ``shakespeare_char`` on a CPU): character tokens, 4 layers, 4 heads,
d_model 128, block 64, batch 12, dropout 0, AdamW (betas 0.9, 0.99; weight decay 0.1 on
matrices), learning rate 1e-3 with 100 warm-up steps and a cosine decay to 1e-4, gradient
clipping at 1.0, 2,000 steps. Both models start from the same weights (minigrad's
initialization, loaded into the twin) and see the same batches (train.py's objective draws
them); their steps alternate in one process, 2 threads each, so the step-time ratio is
measured under the same conditions. At the end both are evaluated on the test split with
the same non-overlapping windows: mean cross-entropy in nats per character.

minigrad's side is train.py's own code: its config, objective (data, batches, loss),
optimizer and schedule (``train.make_optimizer``) and clipping, step for step. Writes
``--out`` (default benchmarks/results/gpt_recipe.json) and prints a summary.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import minigrad as mg  # noqa: E402
from minigrad import optim  # noqa: E402
from minigrad.allocator import reuse_freed_memory  # noqa: E402
from minigrad.data import lm_eval_batches  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", help="a UTF-8 text (default: train.py's built-in corpus)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    p.add_argument("--threads", type=int, default=2, help="threads for each framework (default 2)")
    p.add_argument("--eval-every", type=int, default=0, help="also print both validation losses every N steps")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "gpt_recipe.json"))
    return p.parse_args(argv)


def minigrad_side(text, steps):
    """train.py's objective, model, optimizer and schedule for the recipe."""
    import train
    from models.objectives import make_objective
    flags = ["--model", "gpt", "--max-steps", str(steps), "--dropout", "0"] + (["--text", text] if text else [])
    args, _ = train.parse_args(flags)
    config = train.new_config(args)
    objective = make_objective(config)
    mg.manual_seed(config.seed)
    model = objective.build_model()
    opt, schedule = train.make_optimizer(config, model, steps)
    return config, objective, model, opt, schedule


def torch_side(torch, model, config):
    """The twin: torch.nn modules with minigrad's parameter names, its initial weights,
    AdamW with the same groups (decay on matrices only)."""
    from test_gpt import torch_twin_classes
    _, TorchGPT = torch_twin_classes(torch)
    twin = TorchGPT(model.config)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    decay = [p for p in twin.parameters() if p.ndim >= 2]
    no_decay = [p for p in twin.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, config.beta2))
    return twin, opt


def torch_test_loss(torch, twin, ids, config):
    total, tokens = 0.0, 0
    twin.eval()
    with torch.no_grad():
        for batch in lm_eval_batches(ids, config.batch_size, config.block_size):
            logits = twin(torch.from_numpy(batch.x))
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                       torch.from_numpy(batch.y).reshape(-1), reduction="sum").item()
            tokens += batch.num_tokens
    twin.train()
    return total / tokens


def main(argv=None):
    args = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    config, objective, model, opt, schedule = minigrad_side(args.text, args.steps)
    twin, topt = torch_side(torch, model, config)
    params = list(model.parameters())
    times = {"minigrad": [], "pytorch": []}
    losses = {"minigrad": [], "pytorch": []}

    def minigrad_step(batch, counts):
        loss = objective.loss(model, batch, counts)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(params, config.clip)
        opt.step()
        return loss

    def torch_step(batch, lr):
        for group in topt.param_groups:
            group["lr"] = lr
        logits = twin(torch.from_numpy(batch.x))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 torch.from_numpy(batch.y).reshape(-1))
        topt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), config.clip)
        topt.step()
        return loss

    model.train()
    started = time.perf_counter()
    for step in range(args.steps):
        batch = objective.train_batch(step)
        counts = objective.counts(batch)
        lr = opt.param_groups[0]["lr"]
        order = ["minigrad", "pytorch"] if step % 2 == 0 else ["pytorch", "minigrad"]
        for side in order:
            t0 = time.perf_counter()
            loss = minigrad_step(batch, counts) if side == "minigrad" else torch_step(batch, lr)
            value = float(loss.data) if side == "minigrad" else loss.item()
            times[side].append(time.perf_counter() - t0)
            losses[side].append(value)
        schedule.step()
        if args.eval_every and (step + 1) % args.eval_every == 0:
            print(f"step {step + 1}: valid minigrad {objective.evaluate(model, 'valid')['loss']:.4f}, "
                  f"pytorch {torch_test_loss(torch, twin, objective.ids['valid'], config):.4f}", flush=True)
            model.train()
        elif (step + 1) % 100 == 0:
            print(f"step {step + 1}: train loss minigrad {np.mean(losses['minigrad'][-100:]):.4f}, "
                  f"pytorch {np.mean(losses['pytorch'][-100:]):.4f}", flush=True)
    wall = time.perf_counter() - started
    ours = objective.evaluate(model, "test")["loss"]
    theirs = torch_test_loss(torch, twin, objective.ids["test"], config)
    warm = slice(10, None)                                     # the first steps warm caches up
    ms = {side: 1e3 * float(np.median(t[warm])) for side, t in times.items()}
    result = {
        "text": args.text or "built-in corpus (python-docs)", "steps": args.steps, "threads": args.threads,
        "characters": {split: len(objective.text[split]) for split in ("train", "valid", "test")},
        "test_loss_nats_per_char": {"minigrad": ours, "pytorch": theirs, "difference": ours - theirs},
        "bits_per_char": {"minigrad": ours / math.log(2), "pytorch": theirs / math.log(2)},
        "median_step_ms": ms, "step_time_ratio": ms["minigrad"] / ms["pytorch"], "wall_seconds": wall,
        "recipe": {k: getattr(config, k) for k in ("layers", "heads", "d_model", "block_size", "batch_size",
                                                  "dropout", "lr", "min_lr", "warmup", "beta2", "weight_decay",
                                                  "clip", "tokenizer")},
        "versions": {"numpy": np.__version__, "torch": torch.__version__},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\ntest loss (nats/char): minigrad {ours:.4f}, pytorch {theirs:.4f}, difference {ours - theirs:+.4f}")
    print(f"median step: minigrad {ms['minigrad']:.1f} ms, pytorch {ms['pytorch']:.1f} ms, "
          f"ratio {ms['minigrad'] / ms['pytorch']:.2f}x; results in {args.out}")
    return result


if __name__ == "__main__":
    main()
