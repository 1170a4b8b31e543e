"""The Python side of ``benchmarks/gpu_check.sh``: minigrad on CuPy against PyTorch on CUDA.

    python benchmarks/gpu_benchmark.py environment OUT   is there a GPU? OUT/environment.json;
                                                         none: one line, exit status 2
    python benchmarks/gpu_benchmark.py compare OUT       train.py's runs in OUT/train-* compared:
                                                         OUT/compare.json
    python benchmarks/gpu_benchmark.py bench OUT         the training-step benchmark: OUT/benchmark.json
    python benchmarks/gpu_benchmark.py summary OUT       OUT/summary.md from the files above, printed

Every subcommand takes ``--dry-run``: the same code on the CPU (NumPy for minigrad,
PyTorch on the CPU), small sizes, a few steps, so that CI runs every path that needs no
GPU (tests/test_gpu_check.py). A dry run's figures measure nothing.

The benchmark
-------------
The workloads W1-W3 of ``benchmarks/train_step.py`` (their models, batches and PyTorch
twins imported from there: a 2+2-layer Transformer d 256, a GRU encoder with a
Bahdanau-attention GRUCell decoder, a 2-layer LSTM language model), in float32, and a
Transformer-base step (Vaswani et al., 2017, Table 3 "base": d_model 512, 8 heads,
feed-forward 2048, 6 + 6 layers, dropout 0 here; vocabularies of 32,000, batch 64,
source and target lengths 64; built like W1) in float32 and in float16: minigrad's
``autocast`` and ``GradScaler`` against ``torch.autocast`` and ``torch.amp.GradScaler``.
The step: zero_grad, forward to the loss, backward, Adam (lr 1e-3); in float16 the loss
scaled and the step skippable. Both frameworks start from the same weights (the twin
loads minigrad's state_dict) and must agree on the losses of 3 steps (float32: 1e-4
relative; float16: 2e-2) before they are timed.

Columns, per workload and framework:

    step ms        the median of --repeat steps after --warmup, the frameworks alternating
                   step by step; each timed step ends with a synchronization of the device
                   (cupy: the current stream; torch.cuda.synchronize()), so it times the work
    ratio          minigrad ms / PyTorch ms
    tokens/s       target tokens of the batch / step time
    peak MB        what one step allocates on top of what exists before it (parameters,
                   Adam state), at its worst moment: minigrad through a CuPy memory hook
                   (every block the pool hands out during the step, and given back);
                   PyTorch: max_memory_allocated() - memory_allocated() before the step
    syncs/step     device->host synchronizations in one step (not counting the one that
                   ends a timed step). minigrad: counted by running the same step (the
                   same Python code; only the array module differs) on the test suite's
                   strict backend in counting mode (tests/strict_backend.py
                   count_host_syncs), where every conversion CuPy would synchronize for
                   (bool, float, int, item, tolist, get, asnumpy, a boolean mask, nonzero)
                   is a counting point; the lines are written to benchmark.json. On the
                   GPU, the step is also run once under ``cupyx.allow_synchronize(False)``
                   where this CuPy still has it (deprecated since CuPy 10), which raises on
                   an implicit synchronization: "verified" or its message. PyTorch:
                   ``torch.cuda.set_sync_debug_mode("warn")`` over one step, its warnings
                   counted (torch's GradScaler.step reads the overflow flag: 1 in float16
                   with its default, non-fused Adam).

Why W4 is not here: it is train.py's model, and gpu_check.sh runs train.py itself.
"""
import argparse
import contextlib
import csv
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHMARKS)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCHMARKS)

import numpy as np        # noqa: E402

import minigrad as mg     # noqa: E402
from minigrad import nn, optim   # noqa: E402
from minigrad.amp import GradScaler, autocast   # noqa: E402
from minigrad.deferred_checks import DeferredChecks   # noqa: E402

torch = None              # imported by the subcommands that use it (_import_torch): seconds of start-up


def _import_torch():
    global torch
    try:
        import torch as module
    except ImportError:
        return
    torch = module

NO_GPU_STATUS = 2
CHECK_STEPS = 3
AGREEMENT = {"float32": 1e-4, "float16": 2e-2}
#: (vocabulary, batch, length, Transformer arguments): the GPU's and the dry run's sizes.
TRANSFORMER_BASE = (32000, 64, 64, dict(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                                        dim_feedforward=2048, dropout=0.0))
TRANSFORMER_TINY = (100, 4, 8, dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=32, dropout=0.0))
#: train.py's runs that gpu_check.sh makes, and how close they must come.
RUNS = ("cpu-float32", "float32", "float16")
TOLERANCE = {"tail_loss": 0.10, "token_accuracy": 0.05}


# --------------------------------------------------------------------------- #
# environment
# --------------------------------------------------------------------------- #

def gpu_reason():
    """None where minigrad's CuPy backend runs here, else why not (one line)."""
    try:
        mg.backend.backend_by_name("cupy")
    except mg.BackendError as error:
        return str(error).split(". ")[0]
    return None


def environment(out, dry_run):
    """OUT/environment.json; without a GPU (and not a dry run): one line, exit status 2."""
    info = {"python": platform.python_version(), "numpy": np.__version__, "minigrad": mg.__version__,
            "commit": _git_commit(), "torch": _installed("torch"), "dry_run": dry_run,
            "machine": platform.platform(), "cpus": os.cpu_count()}
    reason = gpu_reason()
    info["gpu"] = None if reason else _gpu_name()
    info["no_gpu_reason"] = reason
    if reason is None:
        import cupy
        info.update(cupy=cupy.__version__, cuda_runtime=cupy.cuda.runtime.runtimeGetVersion())
    _write_json(info, out, "environment.json")
    if reason and not dry_run:
        print(f"gpu_check: no GPU here ({reason}); nothing measured, see {os.path.join(out, 'environment.json')}",
              file=sys.stderr)
        raise SystemExit(NO_GPU_STATUS)
    print(f"gpu_check: {info['gpu'] or 'no GPU: a dry run on the CPU'}; Python {info['python']}, NumPy "
          f"{info['numpy']}, CuPy {info.get('cupy', '-')}, PyTorch {info['torch'] or '-'}")


def _installed(package):
    """The installed version of ``package``, or None (without importing it: torch takes seconds)."""
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _gpu_name():
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else name


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------- #
# compare: train.py on the GPU, float32 and float16, against the CPU's run
# --------------------------------------------------------------------------- #

def run_figures(run_dir):
    """The figures of one train.py run directory, or None if it has none."""
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            metrics = json.load(f)
        with open(os.path.join(run_dir, "history.csv")) as f:
            rows = [row for row in csv.DictReader(f) if row.get("train_loss")]
    except (OSError, ValueError):
        return None
    losses = [float(row["train_loss"]) for row in rows]
    tail = [x for x in losses[-50:] if math.isfinite(x)]
    speeds = [float(row["tokens_per_s"]) for row in rows[len(rows) // 5:] if row.get("tokens_per_s")]
    scales = [float(row["loss_scale"]) for row in rows if row.get("loss_scale")]
    return {"steps": len(losses), "tail_loss": statistics.mean(tail) if tail else None,
            "first_loss": losses[0] if losses else None,
            "tokens_per_s": statistics.median(speeds) if speeds else None,
            "skipped_steps": sum(1 for a, b in zip(scales, scales[1:]) if b < a),
            "final_loss_scale": scales[-1] if scales else None,
            **{k: metrics.get(k) for k in ("loss", "token_accuracy", "exact_match", "bleu", "train_seconds")}}


def agreement(figures, reference):
    """Whether two runs' tail training loss and test token accuracy agree (TOLERANCE)."""
    if figures is None or reference is None or None in (figures["tail_loss"], reference["tail_loss"]):
        return {"agree": False, "why": "a run is missing"}
    loss_gap = abs(figures["tail_loss"] - reference["tail_loss"]) / reference["tail_loss"]
    accuracy_gap = abs(figures["token_accuracy"] - reference["token_accuracy"])
    return {"agree": loss_gap <= TOLERANCE["tail_loss"] and accuracy_gap <= TOLERANCE["token_accuracy"],
            "tail_loss_gap": loss_gap, "token_accuracy_gap": accuracy_gap}


def compare(out, dry_run):
    figures = {run: run_figures(os.path.join(out, f"train-{run}")) for run in RUNS}
    result = {"runs": figures, "tolerance": TOLERANCE, "dry_run": dry_run,
              "float32 vs cpu-float32": agreement(figures["float32"], figures["cpu-float32"]),
              "float16 vs float32": agreement(figures["float16"], figures["float32"])}
    _write_json(result, out, "compare.json")
    for pair in ("float32 vs cpu-float32", "float16 vs float32"):
        print(f"gpu_check: train.py {pair}: {'agree' if result[pair]['agree'] else 'DIFFER'}")


# --------------------------------------------------------------------------- #
# bench: the workloads
# --------------------------------------------------------------------------- #

class Seq2SeqTransformer(nn.Module):
    """W1's model (train_step.py) at any size: embeddings, nn.Transformer, a Linear to V."""

    def __init__(self, vocab, **transformer):
        super().__init__()
        D = transformer["d_model"]
        self.vocab = vocab
        self.src_embed = nn.Embedding(vocab, D)
        self.tgt_embed = nn.Embedding(vocab, D)
        self.transformer = nn.Transformer(**transformer)
        self.out = nn.Linear(D, vocab)

    def forward(self, src, tgt_in, tgt_out, tgt_mask):
        x = self.transformer(self.src_embed(src), self.tgt_embed(tgt_in), tgt_mask=tgt_mask,
                             tgt_is_causal=True)                                  # (B, T, D)
        logits = self.out(x)                                                      # (B, T, V)
        return mg.cross_entropy(logits.reshape(-1, self.vocab), tgt_out.reshape(-1))


def torch_seq2seq_transformer(vocab, **transformer):
    class TorchSeq2SeqTransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            D = transformer["d_model"]
            self.src_embed = torch.nn.Embedding(vocab, D)
            self.tgt_embed = torch.nn.Embedding(vocab, D)
            self.transformer = torch.nn.Transformer(**transformer, batch_first=True)
            self.out = torch.nn.Linear(D, vocab)

        def forward(self, src, tgt_in, tgt_out, tgt_mask):
            x = self.transformer(self.src_embed(src), self.tgt_embed(tgt_in), tgt_mask=tgt_mask,
                                 tgt_is_causal=True)                              # (B, T, D)
            logits = self.out(x)                                                  # (B, T, V)
            return torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1))
    return TorchSeq2SeqTransformer()


def transformer_base_workload(sizes, precision):
    import train_step
    vocab, batch, length, transformer = sizes
    title = (f"Transformer-base (6+6, d {transformer['d_model']}, V {vocab:,}), B {batch}, S = T = {length}"
             if sizes is TRANSFORMER_BASE else f"Transformer, tiny (dry run), B {batch}, T {length}")

    def make_batch(rng):
        src = rng.integers(0, vocab, (batch, length))                             # (B, S)
        tgt = rng.integers(0, vocab, (batch, length + 1))                         # (B, T + 1)
        return src, tgt[:, :-1], tgt[:, 1:]
    return train_step.Workload(
        "TB" if precision == "float32" else "TB16", title, make_batch,
        lambda: Seq2SeqTransformer(vocab, **transformer), train_step.minigrad_transformer_inputs,
        lambda: torch_seq2seq_transformer(vocab, **transformer), train_step.torch_transformer_inputs)


def workloads(names, dry_run):
    """[(Workload, precision)] for the names W1, W2, W3, TB, TB16."""
    import train_step
    chosen = []
    for name in names:
        if name in ("TB", "TB16"):
            precision = "float16" if name == "TB16" else "float32"
            chosen.append((transformer_base_workload(TRANSFORMER_TINY if dry_run else TRANSFORMER_BASE,
                                                     precision), precision))
        else:
            chosen.append((train_step.WORKLOADS[name], "float32"))
    return chosen


class MinigradStep:
    """One minigrad training step; float16: autocast, GradScaler, the skippable Adam step."""

    def __init__(self, model, inputs, precision):
        self.model, self.inputs, self.fp16 = model, inputs, precision == "float16"
        self.opt, self.scaler = optim.Adam(model.parameters(), lr=1e-3), GradScaler(enabled=self.fp16)
        self.checks = DeferredChecks()

    def __call__(self):
        self.opt.zero_grad()
        with self.checks, autocast(enabled=self.fp16):
            loss = self.model(*self.inputs)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss

    def read(self, loss):
        """After the step (outside its time): the loss, and the checks of its indices."""
        self.checks.raise_pending()
        return loss.item()


class TorchStep:
    """The same step in PyTorch (torch.autocast, torch.amp.GradScaler, its default Adam)."""

    def __init__(self, model, inputs, precision, device):
        self.model, self.inputs, self.device, self.fp16 = model, inputs, device, precision == "float16"
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.scaler = torch.amp.GradScaler(device, enabled=self.fp16)

    def __call__(self):
        self.opt.zero_grad()
        with torch.autocast(device_type=self.device, dtype=torch.float16, enabled=self.fp16):
            loss = self.model(*self.inputs)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss

    @staticmethod
    def read(loss):
        return loss.item()


def build_steps(workload, precision, backend, device):
    """{"minigrad": MinigradStep, "PyTorch": TorchStep} with the same weights and batch."""
    mg.manual_seed(0)
    arrays = workload.make_batch(np.random.default_rng(0))
    with mg.use_backend(backend):
        model = workload.minigrad_model()
        inputs = tuple(x.to(backend) if isinstance(x, mg.Tensor) else x for x in workload.minigrad_inputs(arrays))
        steps = {"minigrad": MinigradStep(model, inputs, precision)}
    if torch is not None and not (precision == "float16" and device == "cpu"):
        twin = workload.torch_model().to(device)
        twin.load_state_dict({name: torch.from_numpy(array) for name, array in model.state_dict().items()})
        inputs = tuple(x.to(device) if torch.is_tensor(x) else x for x in workload.torch_inputs(arrays))
        steps["PyTorch"] = TorchStep(twin, inputs, precision, device)
    return steps


def synchronize(label, backend):
    """Wait for the device: a timed step must include its work."""
    if label == "minigrad" and backend == "cupy":
        import cupy
        cupy.cuda.get_current_stream().synchronize()
    elif label == "PyTorch" and torch.cuda.is_available():
        torch.cuda.synchronize()


def same_losses(steps, precision):
    """Each framework's losses over CHECK_STEPS steps; whether they agree."""
    losses = {label: [step.read(step()) for _ in range(CHECK_STEPS)] for label, step in steps.items()}
    if "PyTorch" not in losses:
        return losses, None
    agree = all(abs(a - b) <= AGREEMENT[precision] * abs(b) for a, b in zip(losses["minigrad"], losses["PyTorch"]))
    return losses, agree


def timed_medians(steps, backend, warmup, repeat):
    times = {label: [] for label in steps}
    for round_ in range(warmup + repeat):
        for label, step in steps.items():
            gc.collect()
            synchronize(label, backend)
            start = time.perf_counter()
            loss = step()
            synchronize(label, backend)
            elapsed = time.perf_counter() - start
            step.read(loss)
            if round_ >= warmup:
                times[label].append(elapsed)
    return {label: statistics.median(seconds) for label, seconds in times.items()}


class _PeakMemory:
    """A CuPy memory hook: the most bytes the pool has handed out at once since it began
    (blocks handed out before it are not counted)."""

    def __init__(self):
        import cupy
        hook_class = type("PeakMemoryHook", (cupy.cuda.MemoryHook,), {
            "name": "PeakMemoryHook",
            "malloc_postprocess": lambda hook, **kw: self._malloc(kw["mem_ptr"], kw["mem_size"]),
            "free_postprocess": lambda hook, **kw: self._free(kw["mem_ptr"])})
        self.hook, self.live, self.used, self.peak = hook_class(), {}, 0, 0

    def _malloc(self, pointer, size):
        self.live[pointer] = size
        self.used += size
        self.peak = max(self.peak, self.used)

    def _free(self, pointer):
        self.used -= self.live.pop(pointer, 0)


def peak_bytes(label, step, backend):
    """What one step allocates on top of what exists before it, or None (no GPU)."""
    step.opt.zero_grad()
    gc.collect()
    if label == "minigrad" and backend == "cupy":
        meter = _PeakMemory()
        with meter.hook:
            step.read(step())
        return meter.peak
    if label == "PyTorch" and torch.cuda.is_available():
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step.read(step())
        return torch.cuda.max_memory_allocated() - before
    return None


def minigrad_syncs(workload, precision, backend):
    """(count, [(what, where)], verified): minigrad's host reads in one step, counted on the
    strict backend; verified on the GPU with cupyx.allow_synchronize where CuPy has it."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from strict_backend import count_host_syncs, make_strict_backend
    if "strict" not in mg.backend.backend_names():
        mg.backend.register_backend("strict", make_strict_backend)
    step = build_steps(workload, precision, "strict", "cpu")["minigrad"]
    step.read(step())                                   # the first step makes Adam's state
    with count_host_syncs() as counter:
        loss = step()
    step.read(loss)
    reads = sorted({f"{what} at {where}" for what, where in counter.reads})
    return counter.count, reads, _verified_on_the_gpu(workload, precision) if backend == "cupy" else "n/a (no GPU)"


def _verified_on_the_gpu(workload, precision):
    import cupyx
    if not hasattr(cupyx, "allow_synchronize"):
        return "n/a (this CuPy has no cupyx.allow_synchronize)"
    step = build_steps(workload, precision, "cupy", "cuda")["minigrad"]
    step.read(step())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")             # its deprecation warning
            with cupyx.allow_synchronize(False):
                loss = step()
    except Exception as error:                          # cupyx.DeviceSynchronized
        return f"a synchronization: {type(error).__name__}: {str(error)[:200]}"
    step.read(loss)
    return "verified: none under cupyx.allow_synchronize(False)"


def torch_syncs(step):
    """PyTorch's synchronizations in one step, from its sync debug mode; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss = step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    step.read(loss)
    return sum("synchroniz" in str(w.message) for w in caught)


def bench_one(workload, precision, backend, device, warmup, repeat):
    steps = build_steps(workload, precision, backend, device)
    losses, agree = same_losses(steps, precision)
    medians = timed_medians(steps, backend, warmup, repeat) if agree is not False else {}
    peaks = {label: peak_bytes(label, step, backend) for label, step in steps.items()}
    syncs, lines, verified = minigrad_syncs(workload, precision, backend)
    arrays = workload.make_batch(np.random.default_rng(0))
    tokens = arrays[-1].size
    row = {"workload": workload.name, "title": workload.title, "precision": precision, "tokens": tokens,
           "torch_device": device if "PyTorch" in steps else None,
           "losses": losses, "agree": agree, "median_ms": {k: v * 1e3 for k, v in medians.items()},
           "tokens_per_s": {k: tokens / v for k, v in medians.items()}, "peak_mb": {
               k: None if v is None else v / 1e6 for k, v in peaks.items()},
           "syncs": {"minigrad": syncs, "PyTorch": torch_syncs(steps["PyTorch"]) if "PyTorch" in steps else None},
           "minigrad_sync_reads": lines, "minigrad_sync_check": verified}
    if len(medians) == 2:
        row["ratio"] = medians["minigrad"] / medians["PyTorch"]
    return row


def bench(out, dry_run, names, warmup, repeat):
    backend, device = ("numpy", "cpu") if dry_run else ("cupy", "cuda")
    if dry_run:
        warmup, repeat = min(warmup, 1), min(repeat, 2)
        if torch is not None:
            torch.set_num_threads(1)             # tiny steps: threads would only wait for each other
    rows = []
    for workload, precision in workloads(names, dry_run):
        started = time.perf_counter()
        try:
            row = bench_one(workload, precision, backend, device, warmup, repeat)
        except Exception as error:          # one workload's failure must not lose the others' rows
            row = {"workload": workload.name, "title": workload.title, "precision": precision,
                   "error": f"{type(error).__name__}: {error}"}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"gpu_check: {workload.name} {precision}: " + (row.get("error") or _row_line(row)), flush=True)
        _write_json({"dry_run": dry_run, "backend": backend, "warmup": warmup, "repeat": repeat, "rows": rows},
                    out, "benchmark.json")


def _row_line(row):
    ms = row["median_ms"]
    if not ms:
        return f"the frameworks' losses differ ({row['losses']}): not timed"
    cells = [f"{label} {value:.1f} ms" for label, value in ms.items()]
    if "ratio" in row:
        cells.append(f"ratio {row['ratio']:.2f}")
    return ", ".join(cells) + f"; minigrad {row['syncs']['minigrad']} sync(s)/step"


# --------------------------------------------------------------------------- #
# summary
# --------------------------------------------------------------------------- #

def summary(out):
    """OUT/summary.md from the files the other subcommands wrote; printed."""
    lines = ["# gpu_check", ""]
    env = _read_json(out, "environment.json") or {}
    dry = " (dry run on the CPU: figures measure nothing)" if env.get("dry_run") else ""
    lines.append(f"- GPU: {env.get('gpu') or 'none'}{dry}; "
                 f"CuPy {env.get('cupy', '-')}, PyTorch {env.get('torch') or '-'}, NumPy {env.get('numpy')}, "
                 f"Python {env.get('python')}, minigrad commit {env.get('commit')}")
    tests = os.path.join(out, "tests.txt")
    if os.path.exists(tests):
        with open(tests, errors="replace") as f:
            last = [line.strip() for line in f if line.strip()]
        lines.append(f"- GPU-marked tests: {last[-1] if last else 'no output'}")
    comparison = _read_json(out, "compare.json")
    if comparison:
        lines += ["", "## train.py, default task", "",
                  "| run | steps | tail train loss | test loss | token accuracy | exact match | tokens/s | skipped |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for run, figures in comparison["runs"].items():
            if figures is None:
                lines.append(f"| {run} | missing |  |  |  |  |  |  |")
                continue
            lines.append(f"| {run} | {figures['steps']} | {_number(figures['tail_loss'])} | {_number(figures['loss'])} "
                         f"| {_number(figures['token_accuracy'])} | {_number(figures['exact_match'])} "
                         f"| {_number(figures['tokens_per_s'], 0)} | {figures['skipped_steps']} |")
        for pair in ("float32 vs cpu-float32", "float16 vs float32"):
            verdict = comparison[pair]
            gaps = (f" (tail loss {verdict['tail_loss_gap']:.1%}, token accuracy {verdict['token_accuracy_gap']:.3f})"
                    if "tail_loss_gap" in verdict else f" ({verdict.get('why')})")
            lines.append(f"- {pair}: {'agree' if verdict['agree'] else 'DIFFER'}{gaps}")
    benchmark = _read_json(out, "benchmark.json")
    if benchmark:
        lines += ["", "## Training step, minigrad (CuPy) / PyTorch (CUDA)", "",
                  "| workload | precision | minigrad ms | PyTorch ms | ratio | minigrad tokens/s | PyTorch tokens/s "
                  "| minigrad peak MB | PyTorch peak MB | minigrad syncs/step | PyTorch syncs/step |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in benchmark["rows"]:
            if "error" in row:
                lines.append(f"| {row['workload']} | {row['precision']} | {row['error']} |" + " |" * 8)
                continue
            ms, tps, peak, syncs = row["median_ms"], row["tokens_per_s"], row["peak_mb"], row["syncs"]
            lines.append(" | ".join([
                f"| {row['workload']} {row['title']}", row["precision"], _number(ms.get("minigrad"), 1),
                _number(ms.get("PyTorch"), 1), f"{row['ratio']:.2f}x" if "ratio" in row else "n/a",
                _number(tps.get("minigrad"), 0), _number(tps.get("PyTorch"), 0), _number(peak.get("minigrad"), 0),
                _number(peak.get("PyTorch"), 0), _number(syncs.get("minigrad"), 0),
                _number(syncs.get("PyTorch"), 0)]) + " |")
        checks = sorted({row.get("minigrad_sync_check") for row in benchmark["rows"] if "error" not in row})
        lines += ["", f"minigrad's syncs counted on the strict backend; on the GPU: {'; '.join(map(str, checks))}."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


def _number(value, digits=4):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _write_json(obj, out, name):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name), "w") as f:
        json.dump(obj, f, indent=2, default=str)


def _read_json(out, name):
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["environment", "compare", "bench", "summary"])
    parser.add_argument("out", help="the directory the results are written to")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, small: exercise the paths, measure nothing")
    parser.add_argument("--workloads", default="W1,W2,W3,TB,TB16", help="bench: from W1,W2,W3,TB,TB16 (default: all)")
    parser.add_argument("--warmup", type=int, default=3, help="bench: untimed steps per framework (default 3)")
    parser.add_argument("--repeat", type=int, default=20, help="bench: timed steps per framework (default 20)")
    args = parser.parse_args(argv)
    if args.command == "bench":
        _import_torch()
    if args.command == "environment":
        environment(args.out, args.dry_run)
    elif args.command == "compare":
        compare(args.out, args.dry_run)
    elif args.command == "bench":
        if not args.dry_run and gpu_reason():
            print(f"gpu_benchmark: no GPU here ({gpu_reason()})", file=sys.stderr)
            raise SystemExit(NO_GPU_STATUS)
        bench(args.out, args.dry_run, [w.strip() for w in args.workloads.split(",") if w.strip()],
              args.warmup, args.repeat)
    else:
        summary(args.out)


if __name__ == "__main__":
    main()
