"""Is the race over for seq2seq models? Four encoder-decoders, one corpus, one machine.

    python benchmarks/race.py                                   # a dry run: --task dates, minutes
    python benchmarks/race.py --data fra.txt --tokenizer word --lowercase --split-punctuation \\
        --steps 6000 --params 4000000 --beam-size 4 --out runs/race-fra

The contestants, each trained by ``train.py``'s own code path (``train.main``, one
child process per contestant, one after the other) on the same split of the same
corpus, with the same optimizer, schedule, batch size, seed and step budget:

    gru-bahdanau      GRU encoder-decoder, Bahdanau's additive attention (2014)
    lstm-luong        LSTM encoder-decoder, Luong's "general" attention with input
                      feeding (2015)
    gru-none          GRU encoder-decoder without attention: the whole source must
                      pass through the encoder's final state (Cho et al., Sutskever
                      et al., 2014)
    transformer       the Transformer (Vaswani et al., 2017), post-norm, 4 heads

Comparable sizes: each contestant's width (the RNNs' hidden size H, with embeddings
of H/2; the Transformer's d_model D, with a feed-forward width of 2D) is the multiple
of 8 whose parameter count, vocabularies included, comes closest to ``--params``.
Every model has ``--layers`` layers in its encoder and in its decoder.

What is measured, per contestant (written to ``OUT/race.md``, ``OUT/race.json``,
``OUT/race.png``; each training run's own files are in ``OUT/runs/<name>/``, with
the race's decoded test outputs, ``race_greedy.txt`` and ``race_beam.txt``):

    parameters        model.num_parameters()
    train s           seconds of the training steps alone, to the step budget:
                      from the first step to the last, less the time spent in
                      validation and checkpoint writes (train.py validates at the
                      end of each epoch and at the last step)
    ms/step           train s / steps
    BLEU greedy       the test split's corpus BLEU, as train.py's metrics.json has it
                      (sacrebleu, 13a; the best weights by validation)
    BLEU beam         the same with beam search of width --beam-size (length
                      penalty --length-penalty)
    greedy, beam      decoding speed on the test split: sentences per second, batches
                      of --batch-size, sources in the split's order
    peak RSS          the training process's peak resident memory after train.py's
                      run (training and its test evaluation): the whole process
                      (Python, NumPy, the corpus, the model, its optimizer state and
                      activations), host memory only. Measured as VmHWM of
                      /proc/self/status, the high-water mark of this process image;
                      not resource.getrusage's ru_maxrss, which on Linux carries
                      the parent's peak over fork and exec (it would report this
                      script's own memory for every child). Where /proc is missing,
                      ru_maxrss, and the JSON says so.
    BLEU by length    greedy BLEU of the test pairs whose source has n words (or n
                      source tokens, ``--length-in tokens``: for the character tasks,
                      whose sources are one word), by buckets of n (quintiles of the
                      test split unless --buckets): the fixed-vector bottleneck made
                      visible, if it is there; beside it the exact match by bucket
                      (BLEU counts word 4-grams: a one-word output, as in the
                      reverse task, scores 0 however right it is)

race.png draws BLEU against source length (left) and test BLEU against training
time (right). Numbers from a dry run on a built-in task say nothing about
translation; the real race is a real corpus, e.g. the Tatoeba English-French pairs
(the "fra.txt" of manythings.org/anki: English TAB French TAB attribution).
"""
import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import minigrad as mg                                                     # noqa: E402
import train                                                              # noqa: E402
from models.evaluation import decode_texts                                # noqa: E402
from models.objectives import make_objective                              # noqa: E402

#: name -> (label, train.py flags)
CONTESTANTS = {
    "gru-bahdanau": ("GRU + Bahdanau attention", ["--model", "gru", "--attention", "bahdanau"]),
    "lstm-luong": ("LSTM + Luong (general) attention", ["--model", "lstm", "--attention", "luong-general"]),
    "gru-none": ("GRU without attention", ["--model", "gru", "--attention", "none"]),
    "transformer": ("Transformer", ["--model", "transformer", "--heads", "4"]),
}
WIDTHS = range(8, 4097, 8)                     # the sizes the search may choose from


# --------------------------------------------------------------------------- #
# The parent: sizes, children, tables, plot
# --------------------------------------------------------------------------- #

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Any other flag is passed to every train.py run (e.g. --tokenizer word "
                                       "--lowercase --split-punctuation --max-length 20).",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="FILE", help="a tab-separated parallel corpus (source TAB target); "
                   "default: the built-in --task")
    p.add_argument("--task", default="dates", help="the built-in task when no --data (default: dates)")
    p.add_argument("--num-pairs", type=int, default=4000, help="pairs of the built-in task (default: 4000)")
    p.add_argument("--steps", type=int, default=400, help="the training step budget of every contestant "
                   "(default: 400)")
    p.add_argument("--params", type=int, default=150_000, help="the parameter count each contestant's width "
                   "is chosen to come closest to (default: 150000)")
    p.add_argument("--layers", type=int, default=2, help="layers of every encoder and decoder (default: 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: min(100, steps / 10))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beam-size", type=int, default=4, help="beam width of the beam BLEU and speed (default: 4)")
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--buckets", default=None, metavar="N,N,...", help="upper bounds (in source words) of "
                   "the length buckets, e.g. 5,10,15,20 (default: the test split's quintiles)")
    p.add_argument("--length-in", default="words", choices=["words", "tokens"], help="the unit of source "
                   "length: words, or the source tokenizer's tokens (default: words)")
    p.add_argument("--bucket-metric", default="bleu", choices=["bleu", "exact_match"], help="what race.png "
                   "draws against source length (default: bleu; exact_match for one-word outputs)")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--only", default=None, metavar="NAME,NAME", help="run these contestants only: "
                   + ", ".join(CONTESTANTS))
    p.add_argument("--out", default="runs/race", help="the results directory (default: runs/race)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args, passthrough = p.parse_known_args(argv)
    args.passthrough = passthrough
    names = list(CONTESTANTS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in CONTESTANTS]
    if unknown:
        p.error(f"--only: unknown contestant(s) {', '.join(unknown)}; choose from {', '.join(CONTESTANTS)}")
    args.names = names
    if args.steps < 1 or args.params < 1 or args.layers < 1:
        p.error("--steps, --params and --layers must be at least 1")
    return args


def base_flags(args):
    """The train.py flags every contestant shares."""
    data = ["--data", args.data] if args.data else ["--task", args.task, "--num-pairs", str(args.num_pairs)]
    warmup = args.warmup if args.warmup is not None else min(100, max(args.steps // 10, 1))
    return data + [
        "--layers", str(args.layers), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--warmup", str(warmup), "--seed", str(args.seed), "--backend", args.backend,
        "--max-steps", str(args.steps), "--epochs", "1000000",          # the step budget decides
        "--checkpoint-every", str(args.steps), "--beam-size", "1",       # metrics.json: greedy BLEU
        "--no-progress", "--no-plots", *args.passthrough]


def width_flags(kind, width):
    """The size flags of a contestant of ``width``."""
    if kind == "transformer":
        return ["--d-model", str(width), "--ff", str(2 * width)]
    return ["--hidden", str(width), "--embed-dim", str(max(8, width // 2 // 8 * 8))]


def parameters_at(flags, width, tokenizers):
    """The parameter count of the model ``flags`` + ``width`` build (train.py's config path)."""
    kind = flags[flags.index("--model") + 1]
    args, _ = train.parse_args(flags + width_flags(kind, width))
    objective = make_objective(train.new_config(args), tokenizers, load_data=False)
    return objective.build_model().num_parameters()


def choose_width(flags, target, tokenizers):
    """The width in WIDTHS whose parameter count is closest to ``target``. The count grows
    with the width: doubling from the smallest width brackets the target (so that no
    model much larger than the target is built), a binary search narrows the bracket,
    and the nearer of the two neighbours wins."""
    low, high = 0, 1
    while high < len(WIDTHS) - 1 and parameters_at(flags, WIDTHS[high], tokenizers) < target:
        low, high = high, min(2 * high, len(WIDTHS) - 1)
    while low < high:
        middle = (low + high) // 2
        if parameters_at(flags, WIDTHS[middle], tokenizers) < target:
            low = middle + 1
        else:
            high = middle
    candidates = [WIDTHS[i] for i in (low - 1, low) if 0 <= i < len(WIDTHS)]
    counts = {w: parameters_at(flags, w, tokenizers) for w in candidates}
    best = min(candidates, key=lambda w: abs(counts[w] - target))
    return best, counts[best]


def run_race(args):
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    base = base_flags(args)
    # The corpus read and the tokenizers fitted once, as every child will (same split, same seed).
    first = base + CONTESTANTS[args.names[0]][1]
    parsed, _ = train.parse_args(first)
    mg.set_backend("numpy")
    tokenizers = make_objective(train.new_config(parsed)).tokenizers()
    results = []
    for name in args.names:
        label, model_flags = CONTESTANTS[name]
        flags = base + model_flags
        width, count = choose_width(flags, args.params, tokenizers)
        run_dir = os.path.join(out, "runs", name)
        argv = flags + width_flags(model_flags[1], width) + ["--out", run_dir, "--overwrite"]
        print(f"{name}: width {width}, {count:,} parameters; training {args.steps} steps ...", flush=True)
        spec = {"name": name, "label": label, "width": width, "argv": argv, "run_dir": run_dir,
                "beam_size": args.beam_size, "length_penalty": args.length_penalty, "buckets": args.buckets,
                "length_in": args.length_in}
        spec_path = os.path.join(out, "runs", f"{name}.spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        started = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec_path], check=True, cwd=ROOT)
        with open(os.path.join(run_dir, "race_result.json")) as f:
            result = json.load(f)
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
        print(f"  {result['train_seconds']:.1f} s of training, test BLEU {result['bleu_greedy']:.2f} greedy, "
              f"{result['bleu_beam']:.2f} beam {args.beam_size}", flush=True)
    report = {"machine": machine(args.backend), "settings": settings(args, base), "results": results}
    with open(os.path.join(out, "race.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "race.md"), "w", encoding="utf-8") as f:
        f.write(markdown(report))
    plot(results, os.path.join(out, "race.png"), args.length_in, args.bucket_metric)
    print(markdown(report))
    print(f"written: {os.path.join(out, 'race.md')}, race.json, race.png")
    return report


def machine(backend):
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "backend": backend, "date": time.strftime("%Y-%m-%d")}


def settings(args, base):
    corpus = args.data if args.data else f"--task {args.task} ({args.num_pairs:,} pairs)"
    return {"corpus": corpus, "steps": args.steps, "params_target": args.params, "layers": args.layers,
            "batch_size": args.batch_size, "beam_size": args.beam_size, "length_in": args.length_in,
            "train_flags": base}


def markdown(report):
    s, m = report["settings"], report["machine"]
    lines = [f"Corpus {s['corpus']}; {s['steps']} steps of batch {s['batch_size']} each; {s['layers']} + "
             f"{s['layers']} layers; widths chosen for ~{s['params_target']:,} parameters. {m['processor']}, "
             f"{m['cpus']} CPUs, {m['backend']}, NumPy {m['numpy']}, {m['date']}.", "",
             f"| model | width | parameters | train s | ms/step | BLEU greedy | BLEU beam {s['beam_size']} "
             "| greedy sent/s | beam sent/s | peak RSS MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["results"]:
        lines.append(f"| {r['label']} | {r['width']} | {r['parameters']:,} | {r['train_seconds']:.1f} | "
                     f"{1000 * r['train_seconds'] / max(r['steps'], 1):.1f} | {r['bleu_greedy']:.2f} | "
                     f"{r['bleu_beam']:.2f} | {r['greedy_sentences_per_s']:.1f} | "
                     f"{r['beam_sentences_per_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    buckets = report["results"][0]["buckets"] if report["results"] else []
    if buckets:
        lines += ["", f"Greedy test BLEU by source length ({s['length_in']}; n test pairs per bucket):", "",
                  "| model | " + " | ".join(f"{b['label']} (n={b['n']})" for b in buckets) + " |",
                  "| --- |" + " ---: |" * len(buckets)]
        for r in report["results"]:
            lines.append(f"| {r['label']} | " + " | ".join(f"{b['bleu']:.2f}" for b in r["buckets"]) + " |")
        lines += ["", f"Greedy exact match by source length ({s['length_in']}):", "",
                  "| model | " + " | ".join(b["label"] for b in buckets) + " |",
                  "| --- |" + " ---: |" * len(buckets)]
        for r in report["results"]:
            lines.append(f"| {r['label']} | " + " | ".join(f"{b['exact_match']:.3f}" for b in r["buckets"])
                         + " |")
    return "\n".join(lines) + "\n"


def plot(results, path, length_in, bucket_metric):
    """Left: ``bucket_metric`` by source length; right: the same metric on the whole test
    split against the training time (each point labelled with the parameter count)."""
    from models.plots import plt, save_figure
    name = {"bleu": "BLEU", "exact_match": "exact match"}[bucket_metric]
    overall = {"bleu": "bleu_greedy", "exact_match": "exact_match"}[bucket_metric]
    fig, (ax_len, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        labels = [b["label"] for b in r["buckets"]]
        ax_len.plot(range(len(labels)), [b[bucket_metric] for b in r["buckets"]], "o-", label=r["label"])
        ax_len.set_xticks(range(len(labels)), labels)
        ax_time.plot([r["train_seconds"]], [r[overall]], "o", markersize=8, label=r["label"])
        ax_time.annotate(f"{r['parameters'] / 1e6:.2f}M", (r["train_seconds"], r[overall]),
                         textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax_len.set(xlabel=f"source length ({length_in})", ylabel=f"test {name} (greedy)",
               title=f"{name} by source length")
    ax_time.set(xlabel="training time (s), same step budget", ylabel=f"test {name} (greedy)",
                title="quality against training time")
    for ax in (ax_len, ax_time):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- #
# The child: one contestant, trained by train.main, then measured
# --------------------------------------------------------------------------- #

def run_child(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    clock = instrument_train()
    metrics = train.main(spec["argv"])
    peak_kib, peak_method = peak_resident_kib()
    train_seconds = clock["loop_end"] - clock["loop_start"] - clock["validate"] - clock["save"]

    args, typed = train.parse_args([])
    _, objective, model = train.load_run(spec["run_dir"], args, typed, load_data=True)
    config = objective.config
    batches = objective.eval_batches["test"]
    references = objective.references["test"]
    greedy, greedy_seconds = timed_decode(objective, model, batches, 1, 0.0)
    beam, beam_seconds = timed_decode(objective, model, batches, spec["beam_size"], spec["length_penalty"])
    sources = [s for s, _ in objective.pairs["test"]]
    if spec["length_in"] == "tokens":
        lengths = [len(objective.src_tok.encode(s)) for s in sources]
    else:
        lengths = [len(s.split()) for s in sources]
    edges = bucket_edges(lengths, spec["buckets"])
    result = {
        "name": spec["name"], "label": spec["label"], "width": spec["width"], "flags": spec["argv"],
        "parameters": model.num_parameters(), "steps": metrics["steps"],
        "train_seconds": round(train_seconds, 2), "validation_seconds": round(clock["validate"], 2),
        "bleu_greedy": metrics["bleu"], "exact_match": metrics["exact_match"],
        "bleu_greedy_recomputed": bleu(greedy, references, config.lowercase),
        "bleu_beam": bleu(beam, references, config.lowercase),
        "greedy_sentences_per_s": len(references) / greedy_seconds,
        "beam_sentences_per_s": len(references) / beam_seconds,
        "peak_rss_mib": peak_kib / 1024, "peak_memory_method": peak_method,
        "test_pairs": len(references),
        "buckets": bleu_by_length(lengths, greedy, references, edges, config.lowercase),
    }
    for kind, outputs in (("greedy", greedy), ("beam", beam)):
        with open(os.path.join(spec["run_dir"], f"race_{kind}.txt"), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in outputs)
    with open(os.path.join(spec["run_dir"], "race_result.json"), "w") as f:
        json.dump(result, f, indent=1)


def peak_resident_kib():
    """(KiB, how): this process's peak resident set size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM of /proc/self/status"
    except OSError:
        pass
    # ru_maxrss: KiB on Linux, bytes on macOS; it includes the parent's peak before exec.
    scale = 1024 if sys.platform == "darwin" else 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale, "resource.getrusage ru_maxrss"


def instrument_train():
    """Clocks around train.py's training loop, its validations and checkpoint writes:
    train.train looks these names up in its module at each call."""
    clock = {"loop_start": 0.0, "loop_end": 0.0, "validate": 0.0, "save": 0.0}

    class ClockedLog(train.TrainingLog):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            clock["loop_start"] = time.perf_counter()

        def close(self):
            clock["loop_end"] = time.perf_counter()
            super().close()

    def clocked(function, key):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                clock[key] += time.perf_counter() - started
        return wrapper

    train.TrainingLog = ClockedLog
    train.validate = clocked(train.validate, "validate")
    train.save_run_state = clocked(train.save_run_state, "save")
    return clock


def timed_decode(objective, model, batches, beam_size, alpha):
    """(detokenized outputs, seconds) for the test split, as train.py's evaluation decodes it."""
    config = objective.config
    started = time.perf_counter()
    texts = decode_texts(model, batches, objective.tgt_tok, config.backend, beam_size, alpha,
                         objective.max_positions())
    seconds = time.perf_counter() - started
    return [objective._detokenize(t) for t in texts], seconds


def bleu(hypotheses, references, lowercase):
    import sacrebleu
    if not references:
        return float("nan")
    return sacrebleu.metrics.BLEU(lowercase=lowercase).corpus_score(hypotheses, [references]).score


def bucket_edges(lengths, given):
    """Upper bounds of the length buckets: ``given`` ("5,10,20"), or the quintiles of ``lengths``."""
    if given:
        edges = sorted(int(e) for e in given.split(","))
    else:
        edges = sorted({int(np.ceil(q)) for q in np.quantile(lengths, [0.2, 0.4, 0.6, 0.8])})
    return [e for e in edges if min(lengths) <= e < max(lengths)] + [max(lengths)]


def bleu_by_length(lengths, hypotheses, references, edges, lowercase):
    """[{label, n, bleu, exact_match}] for the test pairs whose source length falls in each bucket
    (exact match compared as train.py's evaluation does, lower-cased when the run is); the
    first bucket starts at the shortest source."""
    buckets, low = [], min(lengths)
    for high in edges:
        chosen = [i for i, n in enumerate(lengths) if low <= n <= high]
        label = f"{low}" if low == high else f"{low}-{high}"
        same = [_fold(hypotheses[i], lowercase) == _fold(references[i], lowercase) for i in chosen]
        buckets.append({"label": label, "n": len(chosen),
                        "bleu": bleu([hypotheses[i] for i in chosen], [references[i] for i in chosen],
                                     lowercase),
                        "exact_match": sum(same) / len(chosen) if chosen else float("nan")})
        low = high + 1
    return buckets


def _fold(text, lowercase):
    return text.lower() if lowercase else text


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return run_child(args.child)
    return run_race(args)


if __name__ == "__main__":
    main()
