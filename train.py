"""Train, evaluate and use minigrad models from the command line.

    python train.py                                  # a Transformer learns to normalize dates
    python train.py --backend cupy                   # the same on a GPU
    python train.py --model gru --attention bahdanau # an RNN encoder-decoder instead
    python train.py --data fra.tsv --tokenizer bpe   # a real corpus (source TAB target)
    python train.py --model gpt                      # a GPT on the built-in text
    python train.py --model gpt --text book.txt      # ... on your own text
    python train.py --model bert                     # BERT: masked tokens, next sentence
    python train.py --resume runs/dates-transformer  # continue an interrupted run
    python train.py --evaluate runs/dates-transformer          # test metrics of a saved run
    python train.py --translate "nov 21st, 2026" --run runs/dates-transformer
    python train.py --translate - --run runs/dates-transformer < dates.txt   # one per line
    python train.py --generate "def " --run runs/python-docs-gpt --top-p 0.9
    python train.py --fill "the [MASK] of the list" --run runs/python-docs-bert

A run directory (``--out``) holds: model.safetensors (the best weights by validation),
checkpoint.safetensors (the latest weights, optimizer and trainer state, for
--resume), config.json, history.csv, metrics.json, samples.txt and plots. Every file
is written to a temporary file and renamed: killing the process at any moment leaves
the previous files whole, and --resume then finishes exactly as an uninterrupted run.

A training step, whatever the model (the objective is the seam: models/objectives/):
    batch = objective.train_batch(step)               # a function of (seed, step)
    loss = objective.loss(model, batch, counts)       # forward and loss (float16: under autocast)
    backward (of the scaled loss); unscale; clip the gradient norm; optimizer step; schedule step
Validation runs at the end of each epoch (seq2seq) or every --eval-every steps and
at the last step; the test split is evaluated once, at the end, with the best weights.

Host reads. A step (``TrainingStep``) reads nothing back from the device: on a GPU the
host queues the kernels of the next steps while the device computes (tests/
test_no_host_sync.py proves it for every model kind). The reads that remain, all
outside the step:
    every 10 steps        the window of losses, gradient norms and divergence flags (and,
                          in float16, skip flags and loss scales): one copy (TrainingLog),
                          with the index-range checks recorded in those steps
                          (minigrad/deferred_checks.py)
    at a checkpoint       the weights, optimizer state and loss scale, to the file
    at validation, test   the metrics' sums, one copy per split; decoding (seq2seq
                          metrics, samples) reads once per generated token
    data parallelism      the gradient all-reduce (MPI on host arrays; NCCL on GPUs)
The batches are host data by nature (the data pipeline makes them; an RNN's lengths
stay a host list): they are copied to the device, never read back.
"""
import argparse
import collections
import csv
import dataclasses
import math
import os
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import distributed as dist
from minigrad import optim
from minigrad.allocator import reuse_freed_memory
from minigrad.blas import use_widest_kernels
from minigrad.amp import GradScaler, autocast
from minigrad.data import DataError
from minigrad.deferred_checks import DeferredChecks
from minigrad.data.tasks import TASKS
from models.checkpoint import (
    CheckpointError, NonFiniteWeightsError, atomic_write, load_checkpoint, load_json, load_weights, save_checkpoint,
    save_json, save_weights,
)
from models.config import (
    SEQ2SEQ_KINDS, ConfigError, RunConfig, config_fields, config_from_json, with_model_defaults,
)
from models.objectives import make_objective, objective_class
from models.run_dir import RunDirError, clear_run, holds_run, prepare_out_dir, remove_leftover_temporaries
from models.sharing import shard_rows

#: What ends in one line on stderr and exit status 2: the user's mistakes.
USER_ERRORS = (DataError, CheckpointError, ConfigError, RunDirError, mg.BackendError)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite (exit status 3); in float16,
    too many steps in a row overflowed, or one did at a loss scale of 1 or less."""


# --------------------------------------------------------------------------- #
# The command line
# --------------------------------------------------------------------------- #

class Parser(argparse.ArgumentParser):
    """argparse with a bad flag as one line (not the whole usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"train.py: error: {message} (`python train.py --help` explains every flag)\n"
                  if dist.is_main() else None)


def finite_float(text):
    """argparse type: a finite number (``nan`` and ``inf`` parse as floats but make no run)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser():
    """The flags: every ``RunConfig`` field, then what to do with a run and how to sample."""
    p = Parser(
        prog="train.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
        epilog="examples:\n" + __doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to do (default: train a new run)")
    g.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR from its last checkpoint; its "
                   "config is reused: --epochs, --max-steps, --backend, --eval-every, --checkpoint-every, "
                   "--beam-size, --length-penalty and the output flags may change, the rest may not")
    g.add_argument("--overwrite", action="store_true", help="start a new run in an --out directory that "
                   "holds one, deleting that run's files (without it, such a directory is refused)")
    g.add_argument("--evaluate", metavar="DIR", help="print the test-split metrics of the run saved in DIR")
    g.add_argument("--translate", metavar="TEXT", help="seq2seq: translate TEXT with the run given by --run; "
                   "'-' reads one text per line from standard input, @FILE from a file")
    g.add_argument("--generate", metavar="PROMPT", help="gpt: continue PROMPT with the run given by --run "
                   "('-' or @FILE: one prompt per line)")
    g.add_argument("--fill", metavar="TEXT", help="bert: fill each [MASK] of TEXT with the run given by --run "
                   "('-' or @FILE: one text per line)")
    g.add_argument("--run", metavar="DIR", help="the saved run --translate, --generate or --fill uses")

    g = p.add_argument_group("sampling (--generate and gpt's samples.txt)")
    g.add_argument("--temperature", type=finite_float, default=0.8, metavar="T", help="divide the logits by this "
                   "before sampling; 0 is greedy (default: 0.8)")
    g.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the k most probable tokens only "
                   "(0: all) (default: 0)")
    g.add_argument("--top-p", type=finite_float, default=1.0, metavar="P", help="nucleus sampling: among the smallest set "
                   "of tokens whose probability reaches p (1: all) (default: 1.0)")
    g.add_argument("--max-new-tokens", type=int, default=200, metavar="N", help="tokens to generate per prompt "
                   "(default: 200)")

    groups = {}
    for f in config_fields():
        group = groups.get(f.metadata["group"])
        if group is None:
            group = groups[f.metadata["group"]] = p.add_argument_group(f.metadata["group"])
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.name == "task":
            help_text += ": " + "; ".join(f"{k}: {v}" for k, v in sorted(TASKS.items()))
        kind = f.type if f.type in (int, float, str, bool) else f.type.__args__[0]
        if f.default is not None and kind is not bool and "(default" not in help_text:
            help_text += f" (default: {f.default})"
        if kind is bool:
            group.add_argument(flag, action="store_true", help=help_text)
            continue
        choices = f.metadata["choices"] or (sorted(TASKS) if f.name == "task" else None)
        metavar = f.metadata["metavar"] or {int: "N", float: "X"}.get(kind)
        group.add_argument(flag, type=finite_float if kind is float else kind, default=f.default,
                           choices=choices, metavar=None if choices else metavar, help=help_text)
    return p


def typed_flags(parser, argv):
    """The destinations of the flags the user actually typed (``--lr 1e-3``, ``--lr=1e-3``):
    comparing a value with its default cannot tell ``--epochs 10`` from no flag at all."""
    by_option = {s: a.dest for a in parser._actions for s in a.option_strings}
    typed = set()
    for token in argv:
        if token == "--":
            break
        option = token.split("=", 1)[0]
        if option in by_option:
            typed.add(by_option[option])
    return typed


def parse_args(argv=None):
    """(args, typed): the parsed flags and the set of those the user typed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    typed = typed_flags(parser, argv)
    actions = [name for name in ("resume", "evaluate", "translate", "generate", "fill")
               if getattr(args, name) is not None]
    if len(actions) > 1:
        parser.error("choose one of --resume, --evaluate, --translate, --generate, --fill; got "
                     + " and ".join("--" + a for a in actions))
    if set(actions) & {"translate", "generate", "fill"} and args.run is None:
        parser.error(f"--{actions[0]} needs --run DIR, the saved run to use")
    if args.run is not None and not set(actions) & {"translate", "generate", "fill"}:
        parser.error("--run goes with --translate, --generate or --fill")
    if args.overwrite and actions:
        parser.error("--overwrite starts a new run; it cannot go with --" + actions[0])
    check_args(args, typed, parser.error)
    return args, typed


def check_args(args, typed, error):
    """Every flag value a model or the loop would refuse, refused here with its name."""
    check_settings(args, error)
    if args.max_new_tokens < 1:
        error(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.top_k < 0:
        error(f"--top-k must be at least 0, got {args.top_k}")
    if args.temperature < 0:
        error(f"--temperature must be >= 0, got {args.temperature}")
    if not 0.0 < args.top_p <= 1.0:
        error(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.resume is None and "segment" in typed and args.model != "bert":
        error(f"--segment says what a BERT sentence pair is made of; --model {args.model} does not use it")
    if args.resume is None and args.model not in SEQ2SEQ_KINDS:
        ignored = sorted(typed & SEQ2SEQ_ONLY)
        if ignored:
            error(f"{', '.join('--' + n.replace('_', '-') for n in ignored)}: sequence-to-sequence settings, "
                  f"which --model {args.model} does not use")
        if args.max_steps == 0:
            error(f"--model {args.model} trains for --max-steps (random windows or pairs, no epochs): "
                  "it must be at least 1")


#: Flags that only a sequence-to-sequence run reads (refused with --model gpt|bert).
SEQ2SEQ_ONLY = {"task", "data", "num_pairs", "min_length", "max_length", "split_punctuation", "attention",
                "bidirectional", "embed_dim", "hidden", "pre_norm", "tie_embeddings", "max_positions",
                "teacher_forcing", "no_input_feeding", "label_smoothing", "epochs", "beam_size", "length_penalty"}


def check_settings(c, error):
    """The values of ``RunConfig``'s fields (on the parsed flags, or on a config.json
    read back: an edited one must fail here, in one line, not later in a model)."""
    at_least_one = ["num_pairs", "embed_dim", "hidden", "heads", "max_positions", "beam_size", "checkpoint_every",
                    "bpe_merges", "vocab_size", "log_every", "layers", "ff", "batch_size", "block_size", "d_model",
                    "epochs"]
    for name in at_least_one:
        value = getattr(c, name)
        if value is not None and value < 1:
            error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in ["max_steps", "eval_every", "warmup", "seed", "min_length"]:
        value = getattr(c, name)
        if value is not None and value < 0:
            error(f"--{name.replace('_', '-')} must be at least 0, got {value}")
    if c.d_model is not None and c.d_model % c.heads:
        error(f"--d-model ({c.d_model}) must be divisible by --heads ({c.heads})")
    for name, low, high in [("dropout", 0.0, 1.0), ("label_smoothing", 0.0, 1.0), ("beta2", 0.0, 1.0)]:
        value = getattr(c, name)
        if value is not None and not low <= value < high:
            error(f"--{name.replace('_', '-')} must be in [{low}, {high}), got {value}")
    for name in ("valid_share", "test_share"):
        if not 0.0 < getattr(c, name) < 1.0:
            error(f"--{name.replace('_', '-')} must be in (0, 1), got {getattr(c, name)}")
    if c.valid_share + c.test_share >= 1.0:
        error(f"--valid-share + --test-share must leave data to train on, got {c.valid_share} + {c.test_share}")
    if not 0.0 <= c.teacher_forcing <= 1.0:
        error(f"--teacher-forcing must be in [0, 1], got {c.teacher_forcing}")
    if c.lr is not None and c.lr <= 0:
        error(f"--lr must be > 0, got {c.lr}")
    for name in ("clip", "weight_decay", "length_penalty", "min_lr"):
        value = getattr(c, name)
        if value is not None and value < 0:
            error(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if c.max_length < c.min_length:
        error(f"--max-length ({c.max_length}) must be at least --min-length ({c.min_length})")
    if c.model in ("gru", "lstm") and c.bidirectional and c.attention == "luong-dot":
        error("--attention luong-dot needs decoder and encoder states of one width, but a "
              "--bidirectional encoder's are twice as wide: use luong-general or luong-concat")
    if c.model in SEQ2SEQ_KINDS and c.text is not None:
        error(f"--text is for --model gpt or bert; --model {c.model} learns from --task or --data")
    if c.model not in SEQ2SEQ_KINDS and c.data is not None:
        error(f"--data is a parallel corpus for seq2seq models; --model {c.model} reads --text FILE")


def main(argv=None):
    """Run the command; a user's mistake ends in one clear line and exit status 2."""
    dist.init()                          # a world of one process, unless started by mpiexec
    args, typed = parse_args(argv)
    np.seterr(all="ignore")              # a diverging loss is detected by the loop, not by NumPy warnings
    run = {"out": None, "saved_step": None, "step": None}     # for the Ctrl-C message
    try:
        if args.evaluate:
            return evaluate_run(args.evaluate, args, typed)
        if args.translate is not None or args.generate is not None or args.fill is not None:
            return use_run(args, typed)
        return train(args, typed, run)
    except USER_ERRORS as e:
        fail(str(e))
    except NonFiniteWeightsError as e:
        fail(f"{e}: the model diverged; the saved files are the last good ones", status=3)
    except TrainingDiverged as e:
        kept = (f"{run['out']} keeps the checkpoint of step {run['saved_step']}" if run["saved_step"] is not None
                else "nothing was saved")
        fail(f"{e}. The run stopped; {kept}, and no non-finite weight was written", status=3)
    except OSError as e:                              # a full disk, a directory removed under us
        fail(f"could not read or write {e.filename or 'a file'}: {e.strerror or e}")
    except KeyboardInterrupt:
        if dist.is_main():
            print("\n" + interrupted_message(run), file=sys.stderr)
        raise SystemExit(130) from None


def fail(message, status=2):
    """One line on stderr (from rank 0 alone: in a data-parallel job every rank meets the
    same error, see ``on_main``) and exit ``status``."""
    message = "; ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    if dist.is_main():
        print(f"train.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def on_main(work):
    """``work()`` on rank 0 alone (files are written and read there); every rank gets
    its result, or raises its error, so that all stop together on a full disk or a
    damaged checkpoint instead of leaving the others waiting. In one process: work()."""
    result = error = None
    if dist.is_main():
        try:
            result = work()
        except USER_ERRORS + (OSError, NonFiniteWeightsError) as e:
            error = e
    if dist.get_world_size() > 1:
        result, error = dist.broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def interrupted_message(run):
    out = run["out"]
    if out is None:
        return "train.py: interrupted before the run started; nothing was written."
    if run["saved_step"] is None:
        return (f"train.py: interrupted at step {run['step'] or 0}, before the first checkpoint: no training "
                f"was saved. `python train.py --resume {out}` starts it again from step 0, as the same run.")
    return (f"train.py: interrupted at step {run['step']}. The files in {out} are whole; "
            f"`python train.py --resume {out}` continues from the checkpoint of step {run['saved_step']} "
            "and reaches what an uninterrupted run would.")


# --------------------------------------------------------------------------- #
# A run's configuration: new, or resumed with what may change
# --------------------------------------------------------------------------- #

def new_config(args):
    values = {f.name: getattr(args, f.name) for f in config_fields()}
    config = with_model_defaults(RunConfig(**values))
    if config.d_model % config.heads:
        raise ConfigError(f"--d-model ({config.d_model}) must be divisible by --heads ({config.heads})")
    return config


def resumed_config(run_dir, args, typed):
    """The saved config with the typed flags that may change applied, and one line that
    says so; a typed flag that would make another run is refused."""
    saved, tokenizers, fingerprint = read_config(run_dir)
    saved = dataclasses.replace(saved, out=run_dir)           # the directory may have moved
    if "out" in typed and os.path.abspath(args.out) != os.path.abspath(run_dir):
        raise ConfigError(f"--resume continues a run in its own directory ({run_dir}); it cannot go with "
                          f"--out {args.out}")
    applied, refused = [], []
    for f in config_fields():
        if f.name not in typed or f.name == "out":
            continue
        new, old = getattr(args, f.name), getattr(saved, f.name)
        if new == old:
            continue
        if f.metadata["on_resume"] == "may":
            applied.append(f"--{f.name.replace('_', '-')} {new} (was {old})")
            saved = dataclasses.replace(saved, **{f.name: new})
        else:
            refused.append(f"--{f.name.replace('_', '-')} {new} (the run has {old})")
    if refused:
        raise ConfigError(f"--resume {run_dir} cannot change {', '.join(refused)}: that would be another run; "
                          "start one with a new --out")
    if applied:
        stretched = (" (a longer or shorter run: the learning-rate schedule's horizon moves, so the rate "
                     "from here on differs from the run's plan)"
                     if typed & {"epochs", "max_steps"} and saved.schedule == "cosine" else "")
        print("resume: applying " + ", ".join(applied) + stretched)
    return saved, tokenizers, fingerprint


def read_config(run_dir):
    """(RunConfig, tokenizers, data fingerprint) from a run directory's config.json,
    every value checked (a config.json of the previous train.py is read too:
    ``migrate_config``)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"no such run directory: {run_dir}")
    values = migrate_config(load_json(path), run_dir)
    if not isinstance(values, dict) or not isinstance(values.get("tokenizers"), dict):
        raise ConfigError(f"{path}: expected a JSON object with the run's settings and its \"tokenizers\"; "
                          "it was not written by this train.py")
    tokenizers = values.pop("tokenizers")
    fingerprint = values.pop("data_sha256", None)
    config = with_model_defaults(config_from_json(values, source=path))

    def refuse(message):
        raise ConfigError(f"{path}: {message.replace('--', '', 1)}")
    check_settings(config, refuse)
    return config, tokenizers, fingerprint


def migrate_config(values, run_dir):
    """A config.json of the previous train.py (tokenizers under ``src_tokenizer`` and
    ``tgt_tokenizer``, no settings added since) in today's form: its settings kept,
    the new ones at the values that run had in effect. Anything else: unchanged."""
    if not isinstance(values, dict) or "src_tokenizer" not in values or "tokenizers" in values:
        return values
    values = dict(values)
    values["tokenizers"] = {"source": values.pop("src_tokenizer"), "target": values.pop("tgt_tokenizer")}
    then = {"text": None, "vocab_size": 10**9, "block_size": None, "beta2": 0.98, "min_lr": 0.0, "eval_every": 0,
            "checkpoint_every": 200, "out": run_dir, "log_every": 100, "no_progress": False, "no_plots": False,
            "precision": "float32"}
    for name, value in then.items():
        values.setdefault(name, value)
    return values


def write_config(config, objective, out):
    """config.json: the settings, the fitted tokenizers, and a fingerprint of the data
    (the file or text read), so that --resume can tell it is training on the same data."""
    save_json(dict(dataclasses.asdict(config), tokenizers=objective.tokenizers(),
                   data_sha256=objective.fingerprint()), os.path.join(out, "config.json"))


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #

def train(args, typed, run):
    world, rank = dist.get_world_size(), dist.get_rank()
    fingerprint = None
    if args.resume:
        config, tokenizers, fingerprint = on_main(lambda: resumed_config(args.resume, args, typed))
    else:
        config, tokenizers = new_config(args), None
    if config.batch_size < world:
        raise ConfigError(f"--batch-size {config.batch_size} is the global batch, split over {world} processes: "
                          f"it must be at least {world}")
    out = on_main(lambda: prepare_run_dir(config, args))
    if world > 1 and config.backend == "cupy":
        dist.use_local_gpu()                      # one GPU per rank on a machine (NCCL needs it)
    mg.set_backend(config.backend)                # BackendError says why, if it can't
    reuse_freed_memory()        # a step's arrays reuse the last step's memory (minigrad/allocator.py)
    blas = use_widest_kernels()                   # NumPy's BLAS at this CPU's width (minigrad/blas.py)
    if not blas.startswith("unchanged"):
        say(blas)

    on_main(lambda: check_memory(config))        # what the data needs, against rank 0's free memory
    objective = make_objective(config, tokenizers)
    if fingerprint is not None and objective.fingerprint() != fingerprint:
        builtin = (" (the built-in corpus is this Python's own documentation: resume under the Python the run "
                   "began with)" if config.model not in SEQ2SEQ_KINDS and config.text is None else "")
        raise DataError(f"the data of {out} has changed since the run began (its SHA-256 differs){builtin}: "
                        "--resume continues a run on the data it started with; start a new run for the new data")
    mg.manual_seed(config.seed)
    model = objective.build_model()
    total = objective.total_steps()
    opt, schedule = make_optimizer(config, model, total)
    scaler = GradScaler(enabled=config.precision == "float16")   # float32: every call passes through
    checkpoint = os.path.join(out, "checkpoint.safetensors")
    state = {"step": 0, "best": None, "validated_step": None, "history": [], "seconds": 0.0,
             "skipped_in_a_row": 0}
    saved = on_main(lambda: load_checkpoint(checkpoint) if args.resume and os.path.exists(checkpoint) else None)
    if saved is not None:                          # rank 0 read it; every rank restores from it
        state = restore(checkpoint, saved, model, opt, schedule, scaler)
        run["saved_step"] = state["step"]
        say(f"resuming {out} at step {state['step']} of {total}")
    elif not args.resume:
        on_main(lambda: write_config(config, objective, out))
    dist.broadcast_parameters(model)              # every rank starts from rank 0's weights
    run["out"] = out
    processes = f" x {world} processes" if world > 1 else ""
    mixed = " in mixed precision (float16)" if scaler.is_enabled() else ""
    say(f"{config.model} with {model.num_parameters():,} parameters on {config.backend}{processes}{mixed}; "
        f"{objective.describe()}")

    checks = DeferredChecks()                   # the step's index checks, read with the log's window
    log = TrainingLog(config, state, total, start=state["step"], checks=checks)
    started = time.perf_counter() - state["seconds"]
    # the gradient norm is measured even without clipping (inf): it shows divergence
    training_step = TrainingStep(objective, model, opt, scaler, config.clip or float("inf"), checks)
    model.train()
    for step in range(state["step"], total):
        # -- one training step ------------------------------------------------
        mg.manual_seed(step_seed(config.seed, step, rank))  # dropout, teacher forcing: (seed, step, rank)
        batch = objective.train_batch(step)                 # the global batch, the same on every rank
        counts = objective.counts(batch)                    # its loss is averaged over these
        if world > 1:
            batch = shard_rows(batch, rank, world)          # this rank's rows (None: none); its loss: its sum x N / count
        lr = opt.param_groups[0]["lr"]
        outcome = training_step(batch, counts)
        if schedule is not None:
            schedule.step()
        # -- bookkeeping: the loss stays on the device until the log reads a window of them
        state["step"] = run["step"] = step + 1
        log.record(state["step"], outcome, counts["tokens"], lr)
        validating = objective.is_eval_point(state["step"]) or state["step"] == total
        if validating or state["step"] % config.checkpoint_every == 0:
            log.flush()                          # raises TrainingDiverged before anything is saved
            if validating:
                validate(objective, model, state, out)
            state["seconds"] = time.perf_counter() - started
            on_main(lambda: save_run_state(out, model, opt, state, schedule, scaler))
            run["saved_step"] = state["step"]
        elif log.due(state["step"]):
            log.flush()
    log.close()
    if state["validated_step"] != state["step"]:
        # Resumed from a checkpoint written before its validation (an older train.py), or
        # a run of zero steps: validate now, as the uninterrupted run did.
        validate(objective, model, state, out)
        on_main(lambda: save_run_state(out, model, opt, state, schedule, scaler))
    return finish(objective, model, config, args, out, state)


@dataclasses.dataclass
class TrainingStep:
    """One training step, without a read from the device (so a GPU never waits for the
    host): forward and loss (float16: under autocast), backward of the loss (float16:
    scaled), the gradients' all-reduce, unscaling, clipping, the update (float16:
    skipped on the device after an overflow). What it works on is fixed for the run;
    ``step(batch, counts)`` returns (loss, gradient norm, skipped, loss scale), device
    arrays for the log; the last two are None in float32."""

    objective: object
    model: object
    opt: object
    scaler: object                      # minigrad.amp.GradScaler (disabled: float32)
    clip: float                         # the largest gradient norm (inf: measure only)
    checks: object                      # minigrad.deferred_checks.DeferredChecks

    def __post_init__(self):
        self.params = list(self.model.parameters())

    def __call__(self, batch, counts):
        self.opt.zero_grad()
        if batch is None:           # a rank without rows (a batch smaller than the world): it adds 0
            loss = mg.zeros(())                 # (float64 for a float64 model: the log reads its value only)
        else:
            with self.checks, autocast(enabled=self.scaler.is_enabled()):   # index checks recorded on the device
                loss = self.objective.loss(self.model, batch, counts)       # forward: the batch's loss
            if dist.get_world_size() > 1:
                loss = loss * dist.get_world_size()
            self.scaler.scale(loss).backward()
        dist.all_reduce_gradients(self.params)              # the mean over ranks: the whole batch's gradient
        self.scaler.unscale_(self.opt)                      # gradients / S, before clipping
        grad_norm = optim.clip_grad_norm_(self.params, self.clip)
        scale = self.scaler.get_scale_async()               # S of this step
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss, grad_norm, self.scaler.found_inf, scale


def check_memory(config):
    """Refuse, before anything is generated, what the objective's data cannot fit in
    (run on rank 0: free memory is one machine's figure)."""
    objective_class(config.model).check_memory(config)        # Objective's default: nothing to check


def say(line):
    """A line of the run's story, from rank 0 alone."""
    if dist.is_main():
        print(line, flush=True)


def prepare_run_dir(config, args):
    """The run directory: checked and writable; a new run never takes one that holds a
    run; the temporary files of a killed save removed."""
    out = prepare_out_dir(config.out, "--resume" if args.resume else "--out")
    if not args.resume and holds_run(out):
        if not args.overwrite:
            raise RunDirError(f"{out} already holds a run. Continue it with `python train.py --resume {out}`, "
                              "start this one elsewhere with --out DIR, or replace it with --overwrite")
        clear_run(out)
    remove_leftover_temporaries(out)
    return out


def save_run_state(out, model, opt, state, schedule, scaler):
    """checkpoint.safetensors, then history.csv (each atomic)."""
    save_checkpoint(os.path.join(out, "checkpoint.safetensors"), model.state_dict(), opt.state_dict(),
                    trainer_state(state, schedule, scaler))
    write_history(state["history"], os.path.join(out, "history.csv"))


def step_seed(seed, step, rank=0):
    """The random stream of one training step (dropout, teacher forcing): a function of
    the seed, the step and the rank alone, so a resumed run draws what an uninterrupted
    one does. Rank 0 draws what one process draws; each other rank its own stream."""
    return (seed * 1_000_003 + step) % 2**63 if rank == 0 else dist.rank_seed(seed, step, rank)


def make_optimizer(config, model, steps_total):
    """The optimizer, its parameter groups and the learning-rate schedule of ``config``.

    Weight decay (when asked for) applies to matrices (Linear and embedding weights)
    only, never to biases or LayerNorm gains: as nanoGPT and BERT do, since shrinking
    a bias or a gain toward 0 is not a simpler model, only a different one."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        opt = optim.SGD(groups, lr=config.lr, momentum=0.9)
    elif config.optimizer == "adamw":
        opt = optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))
    else:
        opt = optim.Adam(groups, lr=config.lr, betas=(0.9, config.beta2))
    if config.schedule == "noam":
        width = config.hidden if config.model in ("gru", "lstm") else config.d_model
        schedule = optim.NoamSchedule(opt, width, warmup=max(config.warmup, 1))
    elif config.schedule == "cosine":
        total = max(steps_total, 2)
        schedule = optim.WarmupCosine(opt, warmup=min(config.warmup, total - 1), total=total, min_lr=config.min_lr)
    else:
        schedule = None
    return opt, schedule


#: What the log keeps of a step until it reads a window: host numbers, then device arrays.
Recorded = collections.namedtuple("Recorded", "step tokens lr loss grad_norm finite skipped scale")


class TrainingLog:
    """The losses of the last steps, read from the device together (one synchronization
    per window, not per step); the history rows; the progress bar or progress lines; and
    the divergence check, before anything is saved: a NaN or infinite loss or gradient
    norm is flagged on the device at every step and seen here. In float16 a step whose
    gradients overflow is skipped and the loss scale halved, which is expected now and
    then; the run stops when MAX_SKIPPED steps in a row were skipped, or one was at a
    loss scale of 1 or less (scaling down cannot be the cure)."""

    WINDOW = 10
    MAX_SKIPPED = 20

    def __init__(self, config, state, total, start, checks):
        self.config, self.state, self.total, self.checks = config, state, total, checks
        self.pending, self.window_start = [], time.perf_counter()
        self.bar = None
        quiet = config.no_progress or not dist.is_main()
        self.lines = not quiet and not sys.stderr.isatty()    # a log file: a line every N steps
        if not quiet and not self.lines:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, desc="training", leave=False, dynamic_ncols=True)

    def record(self, step, outcome, tokens, lr):
        """Keep a step's outcome (``TrainingStep``'s device arrays) for the next read."""
        loss, grad_norm, skipped, scale = outcome
        xp = mg.backend.backend_of(loss.data).xp
        finite = xp.isfinite(loss.data) & xp.isfinite(grad_norm.data)          # () bool, on the device
        self.pending.append(Recorded(step, tokens, lr, loss.data, grad_norm.data, finite, skipped, scale))
        if self.bar is not None:
            self.bar.update(1)

    def due(self, step):
        """A window is full, or a progress line may be due at this step. The same answer on
        every rank (under mpiexec each flush is a collective): it reads only the step."""
        return len(self.pending) >= self.WINDOW or step % self.config.log_every == 0

    def flush(self):
        self.checks.raise_pending()                   # an index out of range, found in these steps
        if not self.pending:
            return
        xp = mg.backend.backend_of(self.pending[0].loss).xp
        scaled = self.pending[0].skipped is not None                        # float16: skip flags, scales
        names = ("loss", "grad_norm", "finite") + (("skipped", "scale") if scaled else ())
        window = {name: mg.backend.to_numpy(xp.stack([getattr(p, name) for p in self.pending]))
                  for name in names}                                         # the one read of the window
        losses = window["loss"]
        if dist.get_world_size() > 1:      # the whole batch's loss: the mean of the ranks' N x shard losses
            summed = dist.all_reduce_sum(np.concatenate([losses.astype(np.float64), ~window["finite"]]))
            losses = summed[:len(losses)] / dist.get_world_size()
            window["finite"] = summed[len(losses):] == 0
        self._check_divergence(losses, window)
        seconds = time.perf_counter() - self.window_start
        tokens_per_s = sum(p.tokens for p in self.pending) / max(seconds, 1e-9)
        for i, p in enumerate(self.pending):
            row = {"step": p.step, "train_loss": float(losses[i]), "lr": p.lr, "tokens_per_s": tokens_per_s}
            if scaled:
                row["loss_scale"] = float(window["scale"][i])
            self.state["history"].append(row)
        step = self.pending[-1].step
        shown = losses[np.isfinite(losses)].mean() if np.isfinite(losses).any() else float("nan")  # skips: inf
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{shown:.3f}", tok_s=f"{tokens_per_s:,.0f}")
        elif self.lines and any(p.step % self.config.log_every == 0 for p in self.pending):
            print(f"step {step}/{self.total}: loss {shown:.4f}, lr {self.pending[-1].lr:.2e}, "
                  f"{tokens_per_s:,.0f} tokens/s", flush=True)
        self.pending, self.window_start = [], time.perf_counter()

    def _check_divergence(self, losses, window):
        """Raise TrainingDiverged at the first step of the window that ends the run."""
        advice = (f"Try a lower --lr (this run: {self.config.lr:g}), a longer --warmup (this run: "
                  f"{self.config.warmup}), or --clip 1 if it was off")
        finite, norms = window["finite"], window["grad_norm"]
        skipped, scales = window.get("skipped"), window.get("scale")
        for i, step in enumerate(p.step for p in self.pending):
            if skipped is None:
                if not finite[i]:
                    self.close()
                    raise TrainingDiverged(f"the training diverged at step {step}: loss {losses[i]}, gradient "
                                           f"norm {norms[i]}. {advice}")
                continue
            self.state["skipped_in_a_row"] = self.state["skipped_in_a_row"] + 1 if skipped[i] else 0
            if skipped[i] and (self.state["skipped_in_a_row"] >= self.MAX_SKIPPED or scales[i] <= 1):
                self.close()
                raise TrainingDiverged(
                    f"the training diverged at step {step}: {self.state['skipped_in_a_row']} step(s) in a row had "
                    f"a non-finite gradient and were skipped, the last at loss scale {scales[i]:g} (loss "
                    f"{losses[i]}); in float16 that is an overflow that scaling the loss down does not cure, "
                    f"or a diverging model. {advice}, or --precision float32")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def validate(objective, model, state, out):
    """Validation metrics into the history; the best weights so far saved."""
    with precision(objective.config):
        metrics = objective.evaluate(model, "valid")
    model.train()
    row = {"step": state["step"]}
    row.update({f"valid_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
    state["history"].append(row)
    epoch = objective.epoch_of(state["step"] - 1)
    where = f"epoch {epoch + 1}, step {state['step']}" if epoch is not None else f"step {state['step']}"
    say(f"  valid ({where}): {objective.valid_line(metrics)}")
    score = objective.score(metrics)
    if state["best"] is None or score > state["best"]:
        state["best"] = score
        on_main(lambda: save_weights(model.state_dict(), os.path.join(out, "model.safetensors")))
    state["validated_step"] = state["step"]


def restore(path, saved, model, opt, schedule, scaler):
    """Model, optimizer, schedule, loss scaler and trainer state from ``load_checkpoint(path)``'s ``saved``."""
    model_state, opt_state, trainer = migrate_checkpoint(saved, model, opt)
    try:
        model.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path} does not match the model and optimizer of this run's config.json: "
                              f"{e}") from None
    expected = {"step": int, "best": (int, float, type(None)), "validated_step": (int, type(None)),
                "history": list, "seconds": (int, float)}
    for key, kind in expected.items():
        if key not in trainer or not isinstance(trainer[key], kind) or isinstance(trainer[key], bool):
            raise CheckpointError(f"{path}: the trainer state lacks a valid {key!r} (got {trainer.get(key)!r:.60}); "
                                  "it was not written by this train.py")
    if schedule is not None and trainer.get("schedule"):
        try:
            schedule.load_state_dict(trainer["schedule"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable schedule state ({e})") from None
    if scaler.is_enabled():
        try:
            scaler.load_state_dict(trainer["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: unreadable loss-scaler state ({type(e).__name__}: {e})") from None
    skipped = trainer.get("skipped_in_a_row", 0)
    if isinstance(skipped, bool) or not isinstance(skipped, int):
        raise CheckpointError(f"{path}: the trainer state's skipped_in_a_row should be an int, got {skipped!r:.40}")
    return dict({key: trainer[key] for key in expected}, skipped_in_a_row=skipped)


#: Weight names the previous train.py's models had, and their names today.
RENAMED_WEIGHTS = {"attention.": "attention_layer."}       # RNNSeq2Seq's attention module


def migrate_weights(state, model):
    """A state_dict of the previous train.py's model under today's names (a name today's
    model knows is left alone)."""
    known = set(model.state_dict())
    renamed = {}
    for name, array in state.items():
        for old, new in RENAMED_WEIGHTS.items():
            if name not in known and name.startswith(old) and new + name[len(old):] in known:
                name = new + name[len(old):]
        renamed[name] = array
    return renamed


def migrate_checkpoint(saved, model, opt):
    """A checkpoint of the previous train.py in today's form: its weights renamed, its
    optimizer's one parameter group cut into today's two (matrices, the rest) with the
    states renumbered, its trainer state ("epoch", "batch") as today's ("validated_step":
    the previous train.py validated only at the end of an epoch, batch 0)."""
    model_state, opt_state, trainer = saved
    model_state = migrate_weights(model_state, model)
    if isinstance(trainer, dict) and "validated_step" not in trainer and "batch" in trainer:
        trainer = dict(trainer, validated_step=trainer["step"] if trainer["batch"] == 0 and trainer["step"] else None)
        groups = opt_state.get("param_groups") if isinstance(opt_state, dict) else None
        if isinstance(groups, list) and len(groups) == 1 and len(opt.param_groups) == 2:
            before = list(model.parameters())                      # the old single group's order
            position = {id(p): i for i, p in enumerate(before)}
            after = [position[id(p)] for group in opt.param_groups for p in group["params"]]
            renumber = {old: new for new, old in enumerate(after)}
            state = {renumber[int(i)]: entries for i, entries in opt_state["state"].items()}
            saved_group = {k: v for k, v in groups[0].items() if k != "params"}
            new_groups, start = [], 0
            for group in opt.param_groups:
                n = len(group["params"])
                new_groups.append(dict(saved_group, weight_decay=group["weight_decay"],
                                       params=list(range(start, start + n))))
                start += n
            opt_state = {"state": state, "param_groups": new_groups}
    return model_state, opt_state, trainer


def trainer_state(state, schedule, scaler):
    return dict(state, schedule=schedule.state_dict() if schedule is not None else None,
                scaler=scaler.state_dict() or None)


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

def finish(objective, model, config, args, out, state):
    """Everything after the last step; a kill in here is finished again by --resume,
    to the same files (it reads only the saved best weights and the test split)."""
    model.load_state_dict(migrate_weights(on_main(lambda: load_weights(os.path.join(out, "model.safetensors"))),
                                          model))
    with precision(config):
        metrics = objective.evaluate(model, "test")              # shared out among the ranks
    metrics.update(steps=state["step"], train_seconds=round(state["seconds"], 1),
                   parameters=model.num_parameters())

    def write_files():
        save_json(metrics, os.path.join(out, "metrics.json"))
        with precision(config):
            text = objective.sample_lines(model)
        atomic_write(os.path.join(out, "samples.txt"), lambda tmp: _write_text(tmp, text))
        if not config.no_plots:
            from models.plots import plot_curves
            plot_curves(state["history"], os.path.join(out, "curves.png"), *objective.CURVES)
            with precision(config):
                objective.plots(model, out)
    on_main(write_files)
    if dist.is_main():
        print_summary(objective, metrics, out)
    return metrics


def precision(config):
    """The run's precision for a forward outside training (validation, test, samples,
    --evaluate, --translate, --generate, --fill): autocast in a float16 run."""
    return autocast(enabled=config.precision == "float16")


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def print_summary(objective, metrics, out):
    rows = objective.summary(metrics)
    if "steps" in metrics:
        rows += [("steps", str(metrics["steps"])), ("time", f"{metrics.get('train_seconds', 0):.0f} s")]
    rows.append(("run directory", out))
    width = max(len(k) for k, _ in rows)
    print("\ntest split\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))


# --------------------------------------------------------------------------- #
# Using a saved run
# --------------------------------------------------------------------------- #

def load_run(run_dir, args, typed, load_data=False):
    """(config, objective, model with the best weights) of a saved run. The run's own
    backend unless --backend is typed; --beam-size and --length-penalty as typed."""
    config, tokenizers, _ = read_config(run_dir)
    changes = {k: getattr(args, k) for k in ("backend", "beam_size", "length_penalty") if k in typed}
    config = dataclasses.replace(config, out=run_dir, **changes)
    mg.set_backend(config.backend)
    objective = make_objective(config, tokenizers, load_data=load_data)
    model = objective.build_model()
    path = os.path.join(run_dir, "model.safetensors")
    try:
        model.load_state_dict(migrate_weights(load_weights(path), model))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} does not match its config.json: {e}") from None
    return config, objective, model.eval()


def evaluate_run(run_dir, args, typed):
    config, objective, model = load_run(run_dir, args, typed, load_data=True)
    with precision(config):
        metrics = objective.evaluate(model, "test")
    if dist.is_main():
        print_summary(objective, metrics, run_dir)
    return metrics


def use_run(args, typed):
    """--translate, --generate, --fill: the input's lines through the run's model."""
    action = next(a for a in ("translate", "generate", "fill") if getattr(args, a) is not None)
    config, objective, model = load_run(args.run, args, typed)
    wanted = {"translate": "translation", "generate": "language_model", "fill": "masked_lm"}[action]
    if objective.name != wanted:
        raise ConfigError(f"--{action} needs a run of a {wanted.replace('_', ' ')} model; {args.run} holds a "
                          f"--model {config.model} run")
    lines = on_main(lambda: read_inputs(getattr(args, action)))     # stdin reaches rank 0 alone

    def use():
        with precision(config):
            return objective.use(model, lines, args)
    outputs = on_main(use)
    if dist.is_main():
        for line in outputs:
            print(line)
    return outputs[0] if len(outputs) == 1 else outputs


def read_inputs(value):
    """TEXT itself; '-' the lines of standard input; '@FILE' the lines of FILE."""
    if value == "-":
        lines = sys.stdin.read().splitlines()
    elif value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise DataError(f"no such input file: {value[1:]}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{value[1:]}: expected UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        return [value]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError("expected at least one non-empty input line, got none")
    return lines


if __name__ == "__main__":
    main()
