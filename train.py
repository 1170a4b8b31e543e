"""Train, evaluate and use a sequence-to-sequence model with minigrad: the command line.

    python train.py                                  # the default: a Transformer learns to
                                                     # normalize dates, on the CPU
    python train.py --backend cupy                   # the same on a GPU
    python train.py --model gru --attention bahdanau # an RNN encoder-decoder instead
    python train.py --data fra.tsv --tokenizer bpe   # a real corpus (source TAB target)
    python train.py --resume runs/dates              # continue an interrupted run
    python train.py --evaluate runs/dates            # test-split metrics of a saved run
    python train.py --translate "nov 21st, 2026" --run runs/dates

A run directory (``--out``) holds: model.safetensors (the best weights by validation
exact match), checkpoint.safetensors (the latest weights, optimizer and trainer
state, for --resume), config.json, history.csv, metrics.json, samples.txt,
curves.png and attention_*.png. Every file is written atomically: killing the
process at any moment leaves the previous files whole.

The loop, per step: forward with teacher forcing, masked cross-entropy (label
smoothing optional), backward, gradient-norm clipping, optimizer step, learning-rate
schedule. Validation after every epoch; the test split is evaluated once, at the end,
with the best weights.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import optim
from minigrad.allocator import reuse_freed_memory
from minigrad.data import (
    BOS_ID, EOS_ID, PAD_ID, DataError, TASKS, batches, build_tokenizer, clean_text, encode_pairs, load_tsv,
    make_task,
    split_pairs, tokenizer_from_dict,
)
from minigrad.nn import functional as F
from models.checkpoint import (
    CheckpointError, atomic_write, load_checkpoint, load_json, load_weights, save_checkpoint, save_json,
    save_weights,
)
from models.decoding import beam_search, greedy_decode
from models.evaluation import decode_limit as _decode_limit, evaluate, to_device
from models.factory import MODEL_KINDS, build_model
from models.seq2seq import ATTENTIONS

CONFIG_KEYS = [  # what config.json keeps: enough to rebuild the data, tokenizers and model
    "task", "data", "num_pairs", "normalize", "lowercase", "split_punctuation", "min_length",
    "max_length", "valid_share", "test_share", "tokenizer", "bpe_merges", "model", "attention",
    "bidirectional", "layers", "embed_dim", "hidden", "d_model", "heads", "ff", "dropout",
    "pre_norm", "tie_embeddings", "teacher_forcing", "no_input_feeding", "max_positions", "optimizer", "lr",
    "weight_decay", "schedule", "warmup", "clip", "label_smoothing", "batch_size", "epochs",
    "max_steps", "seed", "beam_size", "length_penalty", "backend",
]


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="train.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("what to do (default: train a new run)")
    g.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR from its last checkpoint "
                   "(its config is reused; --epochs and --max-steps may extend it, which stretches "
                   "the cosine schedule from there; --backend may move it)")
    g.add_argument("--evaluate", metavar="DIR", help="print the test-split metrics of the run saved in DIR")
    g.add_argument("--translate", metavar="TEXT", help="translate TEXT with the run given by --run")
    g.add_argument("--run", metavar="DIR", help="the saved run --translate uses")

    g = p.add_argument_group("data")
    g.add_argument("--task", default="dates", choices=sorted(TASKS),
                   help="a built-in generated task: " + "; ".join(f"{k}: {v}" for k, v in sorted(TASKS.items())))
    g.add_argument("--data", metavar="FILE.tsv", help="a parallel corpus instead of --task: one pair per line, "
                   "source TAB target (further columns ignored), UTF-8")
    g.add_argument("--num-pairs", type=int, default=12000, help="pairs generated for a built-in task")
    g.add_argument("--normalize", default="NFC", choices=["NFC", "NFKC", "NFD", "NFKD", "none"],
                   help="Unicode normalization of --data text")
    g.add_argument("--lowercase", action="store_true", help="lower-case --data text")
    g.add_argument("--split-punctuation", action="store_true", help="put spaces around punctuation in --data")
    g.add_argument("--min-length", type=int, default=1, help="drop --data pairs with fewer words on a side")
    g.add_argument("--max-length", type=int, default=50, help="drop --data pairs with more words on a side")
    g.add_argument("--valid-share", type=float, default=0.05, help="share of pairs held out for validation")
    g.add_argument("--test-share", type=float, default=0.05, help="share of pairs held out for the test")
    g.add_argument("--tokenizer", default="char", choices=["char", "word", "bpe"],
                   help="how text becomes tokens (learned from the training split)")
    g.add_argument("--bpe-merges", type=int, default=2000, help="merges a BPE tokenizer learns")

    g = p.add_argument_group("model")
    g.add_argument("--model", default="transformer", choices=MODEL_KINDS)
    g.add_argument("--attention", default="bahdanau", choices=ATTENTIONS, help="RNN models: the attention")
    g.add_argument("--bidirectional", action="store_true", help="RNN models: a bidirectional encoder")
    g.add_argument("--layers", type=int, default=2, help="encoder and decoder layers")
    g.add_argument("--embed-dim", type=int, default=64, help="RNN models: embedding width")
    g.add_argument("--hidden", type=int, default=128, help="RNN models: hidden size")
    g.add_argument("--d-model", type=int, default=128, help="Transformer: model width")
    g.add_argument("--heads", type=int, default=4, help="Transformer: attention heads")
    g.add_argument("--ff", type=int, default=256, help="Transformer: feed-forward width")
    g.add_argument("--pre-norm", action="store_true", help="Transformer: LayerNorm before each sub-layer")
    g.add_argument("--tie-embeddings", action="store_true", help="Transformer: output layer shares the "
                   "target embedding matrix")
    g.add_argument("--max-positions", type=int, default=512, help="Transformer: longest sequence")
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument("--teacher-forcing", type=float, default=1.0,
                   help="RNN models: probability of reading the true previous token in training")
    g.add_argument("--no-input-feeding", action="store_true",
                   help="Luong attention: do not feed the attentional state into the next step")

    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    g.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--schedule", default="cosine", choices=["cosine", "noam", "constant"],
                   help="cosine: linear warm-up then cosine decay; noam: the Transformer paper's "
                   "warm-up and 1/sqrt(step) decay (ignores --lr)")
    g.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    g.add_argument("--clip", type=float, default=1.0, help="clip the gradient norm to this (0: off)")
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--beam-size", type=int, default=1, help="decoding for the test metrics (1: greedy)")
    g.add_argument("--length-penalty", type=float, default=0.6, help="beam search: alpha of Wu et al.'s "
                   "lp(Y) = ((5 + |Y|) / 6)^alpha (0: rank by log-probability alone)")
    g.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints "
                   "(also at the end of each epoch)")

    g = p.add_argument_group("where and how")
    g.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    g.add_argument("--out", default="runs/dates", help="the run directory")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = p.parse_args(argv)
    if args.translate is not None and args.run is None:
        p.error("--translate needs --run DIR, the saved run to translate with")
    check_args(args, p.error)
    return args


def check_args(args, error):
    """Every flag value a model or the loop would refuse, refused here with its name."""
    positive = ["num_pairs", "layers", "embed_dim", "hidden", "d_model", "heads", "ff", "max_positions",
                "batch_size", "epochs", "beam_size", "checkpoint_every", "bpe_merges"]
    for name in positive:
        if getattr(args, name) < 1:
            error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.d_model % args.heads:
        error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    for name, low, high in [("dropout", 0.0, 1.0), ("label_smoothing", 0.0, 1.0),
                            ("valid_share", 0.0, 1.0), ("test_share", 0.0, 1.0)]:
        value = getattr(args, name)
        if not low <= value < high or (name.endswith("share") and value == 0.0):
            error(f"--{name.replace('_', '-')} must be in {'(' if name.endswith('share') else '['}"
                  f"{low}, {high}), got {value}")
    if not 0.0 <= args.teacher_forcing <= 1.0:
        error(f"--teacher-forcing must be in [0, 1], got {args.teacher_forcing}")
    if args.lr <= 0 or args.warmup < 0 or args.clip < 0 or args.weight_decay < 0 or args.max_steps < 0:
        error("--lr must be > 0 and --warmup, --clip, --weight-decay, --max-steps >= 0")
    if args.length_penalty < 0:
        error(f"--length-penalty must be >= 0, got {args.length_penalty}")
    if args.model != "transformer" and args.bidirectional and args.attention == "luong-dot":
        error("--attention luong-dot needs decoder and encoder states of one width, but a "
              "--bidirectional encoder's are twice as wide: use luong-general or luong-concat")


def main(argv=None):
    """Run the command; a user's mistake ends in one clear line and exit status 2."""
    args = parse_args(argv)
    try:
        if args.evaluate:
            return evaluate_run(args.evaluate, args)
        if args.translate is not None:
            return translate(args.run, args.translate, args)
        return train(args)
    except (DataError, CheckpointError, mg.BackendError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        out = args.resume or args.out
        print(f"\ntrain.py: interrupted. The files in {out} are whole; continue from its last "
              f"checkpoint with: python train.py --resume {out}", file=sys.stderr)
        raise SystemExit(130) from None


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #

def load_pairs(config):
    """All pairs of the task or corpus, split (train, valid, test) by the seed."""
    if config["data"]:
        pairs = load_tsv(config["data"], normalize=None if config["normalize"] == "none" else config["normalize"],
                         lowercase=config["lowercase"], split_punctuation=config["split_punctuation"],
                         min_length=config["min_length"], max_length=config["max_length"])
    else:
        pairs = make_task(config["task"], config["num_pairs"], seed=config["seed"])
    return split_pairs(pairs, valid=config["valid_share"], test=config["test_share"], seed=config["seed"])


def fit_tokenizers(config, train_pairs):
    options = {"num_merges": config["bpe_merges"]} if config["tokenizer"] == "bpe" else {}
    src = build_tokenizer(config["tokenizer"], [s for s, _ in train_pairs], **options)
    tgt = build_tokenizer(config["tokenizer"], [t for _, t in train_pairs], **options)
    return src, tgt


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #

def make_optimizer(config, model, steps_total):
    params = list(model.parameters())
    if config["optimizer"] == "sgd":
        opt = optim.SGD(params, lr=config["lr"], momentum=0.9, weight_decay=config["weight_decay"])
    elif config["optimizer"] == "adamw":
        opt = optim.AdamW(params, lr=config["lr"], betas=(0.9, 0.98), weight_decay=config["weight_decay"])
    else:
        opt = optim.Adam(params, lr=config["lr"], betas=(0.9, 0.98), weight_decay=config["weight_decay"])
    if config["schedule"] == "noam":
        width = config["d_model"] if config["model"] == "transformer" else config["hidden"]
        schedule = optim.NoamSchedule(opt, width, warmup=config["warmup"])
    elif config["schedule"] == "cosine":
        schedule = optim.WarmupCosine(opt, warmup=min(config["warmup"], steps_total - 1), total=steps_total)
    else:
        schedule = None
    return opt, schedule


def step_seed(seed, step):
    """The random stream of one training step (dropout, teacher forcing): a function of
    the seed and the step alone, so a resumed run draws what an uninterrupted one does."""
    return (seed * 1_000_003 + step) % 2**63


RUN_FILES = ["model.safetensors", "checkpoint.safetensors", "config.json", "history.csv", "metrics.json",
             "samples.txt", "curves.png"]


def train(args):
    resume = args.resume
    if resume:
        config = load_json(os.path.join(resume, "config.json"))
        defaults = parse_args([])
        for key in ("epochs", "max_steps", "backend"):           # these may change on resume
            if getattr(args, key) != getattr(defaults, key):
                config[key] = getattr(args, key)
        out = resume
    else:
        config = {k: getattr(args, k) for k in CONFIG_KEYS}
        out = args.out
    backend = config["backend"]
    mg.set_backend(backend)                                   # BackendError says why, if it can't
    reuse_freed_memory()        # a step's arrays reuse the last step's memory (minigrad/allocator.py)

    train_pairs, valid_pairs, test_pairs = load_pairs(config)
    if resume:
        src_tok, tgt_tok = (tokenizer_from_dict(config[k]) for k in ("src_tokenizer", "tgt_tokenizer"))
    else:
        src_tok, tgt_tok = fit_tokenizers(config, train_pairs)
        config["src_tokenizer"], config["tgt_tokenizer"] = src_tok.to_dict(), tgt_tok.to_dict()
        config["sizes"] = {"train": len(train_pairs), "valid": len(valid_pairs), "test": len(test_pairs)}
    train_ids = encode_pairs(train_pairs, src_tok, tgt_tok)
    check_lengths(config, train_ids)
    valid_batches = batches(encode_pairs(valid_pairs, src_tok, tgt_tok), config["batch_size"], shuffle=False)

    mg.manual_seed(config["seed"])
    model = build_model(config, src_tok.vocab_size, tgt_tok.vocab_size, pad_id=PAD_ID)
    steps_per_epoch = len(batches(train_ids, config["batch_size"], seed=config["seed"], epoch=0))
    steps_total = steps_per_epoch * config["epochs"]
    if config["max_steps"]:
        steps_total = min(steps_total, config["max_steps"])
    opt, schedule = make_optimizer(config, model, max(steps_total, 2))
    state = {"step": 0, "epoch": 0, "batch": 0, "best": -1.0, "history": [], "seconds": 0.0}
    if resume:
        state = restore(os.path.join(out, "checkpoint.safetensors"), model, opt, schedule)
        print(f"resuming {out} at step {state['step']} (epoch {state['epoch'] + 1}, batch {state['batch']})")
    else:
        # A new run in a directory that held one: its files go first, so the two never mix.
        os.makedirs(out, exist_ok=True)
        for name in RUN_FILES + [f for f in os.listdir(out) if f.startswith("attention_") and f.endswith(".png")]:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        save_json(config, os.path.join(out, "config.json"))

    V = tgt_tok.vocab_size
    print(f"{config['model']} with {model.num_parameters():,} parameters on {backend}; "
          f"{len(train_pairs):,} training pairs, {steps_per_epoch} steps per epoch")
    progress = _progress_bar(args)
    started = time.perf_counter() - state["seconds"]
    last_save = state["step"]

    def reached_max_steps():
        return bool(config["max_steps"]) and state["step"] >= config["max_steps"]

    for epoch in range(state["epoch"], config["epochs"]):
        if reached_max_steps():          # a resumed run that had already finished its steps
            break
        model.train()
        epoch_batches = batches(train_ids, config["batch_size"], seed=config["seed"], epoch=epoch)
        bar = progress(total=len(epoch_batches), initial=state["batch"], desc=f"epoch {epoch + 1}/{config['epochs']}")
        pending, window_start = [], time.perf_counter()      # steps whose loss is still on the device
        for i in range(state["batch"], len(epoch_batches)):
            if reached_max_steps():
                break
            mg.manual_seed(step_seed(config["seed"], state["step"]))
            batch = epoch_batches[i]
            src, lengths, tgt_in, tgt_out = to_device(batch, backend)
            logits, _ = model(src, lengths, tgt_in)                            # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1), ignore_index=PAD_ID,
                                   label_smoothing=config["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            if config["clip"]:
                optim.clip_grad_norm_(model.parameters(), config["clip"])
            opt.step()
            state["step"] += 1
            state["batch"] = i + 1
            pending.append((state["step"], loss.data, batch.num_tokens, opt.param_groups[0]["lr"]))
            if schedule is not None:
                schedule.step()
            bar.update(1)
            # The losses are read from the device once per 10 steps, not at every step.
            if state["step"] % 10 == 0 or i + 1 == len(epoch_batches):
                log_window(state, pending, epoch, time.perf_counter() - window_start, bar)
                pending, window_start = [], time.perf_counter()
            if state["step"] - last_save >= args.checkpoint_every:
                if pending:
                    log_window(state, pending, epoch, time.perf_counter() - window_start, bar)
                    pending, window_start = [], time.perf_counter()
                state["seconds"] = time.perf_counter() - started
                save_checkpoint(os.path.join(out, "checkpoint.safetensors"), model.state_dict(),
                                opt.state_dict(), _trainer_state(state, schedule))
                last_save = state["step"]
        if pending:
            log_window(state, pending, epoch, time.perf_counter() - window_start, bar)
        bar.close()
        if state["batch"] == len(epoch_batches):                 # the epoch is complete
            state["epoch"], state["batch"] = epoch + 1, 0
        validate(model, valid_batches, valid_pairs, tgt_tok, backend, state, out, epoch, config)
        state["seconds"] = time.perf_counter() - started
        save_checkpoint(os.path.join(out, "checkpoint.safetensors"), model.state_dict(),
                        opt.state_dict(), _trainer_state(state, schedule))
        last_save = state["step"]
        write_history(state["history"], os.path.join(out, "history.csv"))
        if reached_max_steps():
            break
    return finish(model, config, args, out, test_pairs, src_tok, tgt_tok, backend, state)


def max_positions(config):
    """The Transformer's position table bounds its sequences; RNNs have no bound."""
    return config["max_positions"] if config["model"] == "transformer" else None


def decode_limit(config, source_length):
    return _decode_limit(source_length, max_positions(config))


def check_lengths(config, encoded_pairs):
    """Every training sequence must fit the Transformer's position table."""
    limit = max_positions(config)
    if limit is None or not encoded_pairs:
        return
    longest = max(max(len(s), len(t) + 1) for s, t in encoded_pairs)     # + <bos> or <eos>
    if longest > limit:
        raise DataError(f"a training sequence has {longest} tokens, more than --max-positions {limit}: "
                        "raise --max-positions, lower --max-length, or use a coarser --tokenizer")


def log_window(state, pending, epoch, seconds, bar):
    """One history row per step of the window, read from the device at once."""
    losses = mg.backend.to_numpy(mg.backend.backend_of(pending[0][1]).xp.stack([p[1] for p in pending]))
    tokens_per_s = sum(p[2] for p in pending) / max(seconds, 1e-9)
    for (step, _, _, lr), loss in zip(pending, losses.tolist()):
        state["history"].append({"step": step, "epoch": epoch + 1, "train_loss": loss, "lr": lr,
                                 "tokens_per_s": tokens_per_s})
    bar.set_postfix(loss=f"{losses.mean():.3f}", tok_s=f"{tokens_per_s:,.0f}")


def validate(model, valid_batches, valid_pairs, tgt_tok, backend, state, out, epoch, config):
    """Validation metrics into the history; the best weights (by exact match) saved."""
    metrics, _ = evaluate(model, valid_batches, [t for _, t in valid_pairs], tgt_tok, backend,
                          max_positions=max_positions(config))
    model.train()
    row = {"step": state["step"], "epoch": epoch + 1}
    row.update({f"valid_{k}": v for k, v in metrics.items()})
    state["history"].append(row)
    print(f"  valid: loss {metrics['loss']:.4f}, token accuracy {metrics['token_accuracy']:.4f}, "
          f"exact match {metrics['exact_match']:.4f}, BLEU {metrics['bleu']:.2f}")
    score = metrics["exact_match"] + 1e-3 * metrics["token_accuracy"]       # ties: token accuracy
    if score > state["best"]:
        state["best"] = score
        save_weights(model.state_dict(), os.path.join(out, "model.safetensors"))


def restore(path, model, opt, schedule):
    model_state, opt_state, trainer = load_checkpoint(path)
    try:
        model.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} does not match the model of this run's config.json: {e}") from None
    try:
        if schedule is not None and trainer.get("schedule"):
            schedule.load_state_dict(trainer["schedule"])
        return {k: trainer[k] for k in ("step", "epoch", "batch", "best", "history", "seconds")}
    except KeyError as e:
        raise CheckpointError(f"{path} lacks the trainer state {e}; it was not written by this train.py") from None


def _trainer_state(state, schedule):
    return dict(state, schedule=schedule.state_dict() if schedule is not None else None)


def write_history(history, path):
    keys = []
    for row in history:
        keys.extend(k for k in row if k not in keys)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)
    atomic_write(path, write)


# --------------------------------------------------------------------------- #
# The end of a run: test metrics, samples, plots, summary
# --------------------------------------------------------------------------- #

def finish(model, config, args, out, test_pairs, src_tok, tgt_tok, backend, state):
    model.load_state_dict(load_weights(os.path.join(out, "model.safetensors")))
    test_batches = batches(encode_pairs(test_pairs, src_tok, tgt_tok), config["batch_size"], shuffle=False)
    references = [t for _, t in test_pairs]
    metrics, hypotheses = evaluate(model, test_batches, references, tgt_tok, backend, config["beam_size"],
                                   config["length_penalty"], max_positions(config))
    metrics.update({"steps": state["step"], "train_seconds": round(state["seconds"], 1),
                    "parameters": model.num_parameters(), "test_pairs": len(test_pairs)})
    save_json(metrics, os.path.join(out, "metrics.json"))
    write_samples(test_pairs, hypotheses, os.path.join(out, "samples.txt"))
    if not args.no_plots:
        from models.plots import plot_curves
        plot_curves(state["history"], os.path.join(out, "curves.png"))
        plot_attention_maps(model, config, test_pairs[:3], src_tok, tgt_tok, backend, out)
    print_summary(metrics, out)
    return metrics


def write_samples(pairs, hypotheses, path, limit=100):
    lines = []
    for (src, ref), hyp in list(zip(pairs, hypotheses))[:limit]:
        mark = "" if hyp == ref else "   <- differs"
        lines.append(f"source:     {src}\nreference:  {ref}\nhypothesis: {hyp}{mark}\n")

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    atomic_write(path, write)


def plot_attention_maps(model, config, pairs, src_tok, tgt_tok, backend, out):
    """attention_<i>.png for a few sentences: RNN models one map; the Transformer, the
    heads of its last layer and head 0 of its first."""
    from models.plots import plot_attention
    is_transformer = hasattr(model, "keep_attention")
    model.eval()
    for i, (src_text, _) in enumerate(pairs):
        ids = src_tok.encode(src_text)
        src = mg.Tensor(mg.backend.backend_by_name(backend).from_numpy(np.array([ids], dtype=np.int64)))
        out_hyp = greedy_decode(model, src, [len(ids)], BOS_ID, EOS_ID, max_len=decode_limit(config, len(ids)),
                                keep_attention=True)
        steps = out_hyp.attention[0] if out_hyp.attention else None
        if not steps:
            continue
        out_tokens = tgt_tok.pieces(out_hyp.tokens[0]) + ["<eos>"]
        steps = steps[:len(out_tokens)]
        out_tokens = out_tokens[:len(steps)]
        if is_transformer:
            layers = len(steps[0])
            heads = steps[0][0].shape[0]
            chosen = [(layers - 1, h) for h in range(heads)] + ([(0, 0)] if layers > 1 else [])
            maps = [np.stack([step[layer][head] for step in steps]) for layer, head in chosen]
            titles = [f"layer {layer + 1}, head {head + 1}" for layer, head in chosen]
        else:
            maps, titles = [np.stack(steps)], [f"{model.attention_kind} attention"]
        plot_attention(src_tok.pieces(ids), out_tokens, maps, titles, os.path.join(out, f"attention_{i}.png"))


def print_summary(metrics, out):
    rows = [("exact match", f"{metrics['exact_match']:.4f}"), ("BLEU", f"{metrics['bleu']:.2f}"),
            ("token accuracy", f"{metrics['token_accuracy']:.4f}"), ("loss", f"{metrics['loss']:.4f}"),
            ("perplexity", f"{metrics['perplexity']:.3f}"), ("steps", str(metrics.get("steps", ""))),
            ("time", f"{metrics.get('train_seconds', 0):.0f} s"), ("run directory", out)]
    width = max(len(k) for k, _ in rows)
    print("\ntest split" + "\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))


def _progress_bar(args):
    from tqdm import tqdm

    def make(**kwargs):
        return tqdm(disable=args.no_progress, leave=False, dynamic_ncols=True, **kwargs)
    return make


# --------------------------------------------------------------------------- #
# Using a saved run
# --------------------------------------------------------------------------- #

def load_run(run_dir, backend):
    config = load_json(os.path.join(run_dir, "config.json"))
    mg.set_backend(backend)
    try:
        src_tok, tgt_tok = (tokenizer_from_dict(config[k]) for k in ("src_tokenizer", "tgt_tokenizer"))
        model = build_model(config, src_tok.vocab_size, tgt_tok.vocab_size, pad_id=PAD_ID)
    except KeyError as e:
        raise CheckpointError(f"{run_dir}/config.json lacks {e}; it was not written by this train.py") from None
    try:
        model.load_state_dict(load_weights(os.path.join(run_dir, "model.safetensors")))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{run_dir}/model.safetensors does not match its config.json: {e}") from None
    return config, model.eval(), src_tok, tgt_tok


def evaluate_run(run_dir, args):
    config, model, src_tok, tgt_tok = load_run(run_dir, args.backend)
    _, _, test_pairs = load_pairs(config)
    test_batches = batches(encode_pairs(test_pairs, src_tok, tgt_tok), config["batch_size"], shuffle=False)
    metrics, _ = evaluate(model, test_batches, [t for _, t in test_pairs], tgt_tok, args.backend,
                          args.beam_size, args.length_penalty, max_positions(config))
    print_summary(metrics, run_dir)
    return metrics


def translate(run_dir, text, args):
    config, model, src_tok, tgt_tok = load_run(run_dir, args.backend)
    if config["data"]:                        # the cleaning the training corpus had
        text = clean_text(text, None if config["normalize"] == "none" else config["normalize"],
                          config["lowercase"], config["split_punctuation"])
    ids = src_tok.encode(text)
    if not ids:
        raise DataError(f"the text {text!r} has no tokens the model knows")
    src = mg.Tensor(mg.backend.backend_by_name(args.backend).from_numpy(np.array([ids], dtype=np.int64)))
    limit = decode_limit(config, len(ids))
    if args.beam_size > 1:
        out = beam_search(model, src, [len(ids)], BOS_ID, EOS_ID, beam_size=args.beam_size, max_len=limit,
                          alpha=args.length_penalty)
    else:
        out = greedy_decode(model, src, [len(ids)], BOS_ID, EOS_ID, max_len=limit)
    result = tgt_tok.decode(out.tokens[0])
    print(result)
    return result


if __name__ == "__main__":
    main()
