"""Per-op overhead: minigrad against raw NumPy and PyTorch (CPU), in one run.

What is measured
----------------
The time of one op on small arrays, in microseconds per op. On arrays this small
the arithmetic costs little, so what the table shows is each framework's
bookkeeping around it: Python calls, Tensor objects, dtype and backend checks,
recording the graph and walking it back.

Workloads (float32, inputs drawn once from a standard normal):

    small add       a + b    a, b: (16, 16)
    small matmul    a @ b    a, b: (64, 64)

Modes:

    no autograd     forward only. minigrad and PyTorch: inputs without
                    requires_grad, run under mg.no_grad() / torch.no_grad().
                    NumPy: the op itself.
    with autograd   forward with inputs that require grad, then y.backward(gy)
                    with gy = ones of y's shape; the inputs' .grad is reset to None
                    before each step, so no step pays for accumulation.
                    NumPy: the same forward and backward written by hand
                    (add: ga = gb = gy copied; matmul: ga = gy @ b.T, gb = a.T @ gy).

Timing follows ``timeit``: 100 warm-up calls, then the best (minimum) of
``--repeats`` runs of ``--number`` calls each, with the garbage collector off
during a run. The minimum is the run least disturbed by everything else the
machine was doing. Before timing, every step is run once and its outputs are
checked against NumPy, so that each column times a correct computation.

Why a ratio in one run, not a wall-clock assertion
--------------------------------------------------
Microseconds depend on the CPU, its load and its BLAS; a fixed threshold would
fail on a busy machine and pass on a fast one without saying anything about
minigrad. The frameworks measured side by side, in one process, on the same
arrays, share all of that, so the ratios minigrad/NumPy and minigrad/PyTorch are
what carries over from one machine to another. Hence a script that prints a
table, not a test.

    python benchmarks/overhead.py
    python benchmarks/overhead.py --repeats 9 --number 5000 --json overhead.json
    python benchmarks/overhead.py --backend cupy        # on a machine with a GPU
"""
import argparse
import contextlib
import gc
import json
import operator
import os
import platform
import sys
import time
from dataclasses import dataclass

# Import this checkout's minigrad (the script runs as `python benchmarks/overhead.py`).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import minigrad as mg
from minigrad.backend import BackendError, backend_by_name

try:
    import torch
except ImportError:
    torch = None

WARMUP_CALLS = 100


# --------------------------------------------------------------------------- #
# Workloads
# --------------------------------------------------------------------------- #

def add_backward(gy, a, b):
    """d(a + b): gy reaches both inputs unchanged (one copy each: each owns its grad)."""
    return gy.copy(), gy.copy()


def matmul_backward(gy, a, b):
    """d(a @ b): ga = gy @ b^T, gb = a^T @ gy."""
    return gy @ b.T, a.T @ gy


@dataclass
class Workload:
    name: str
    a_shape: tuple
    b_shape: tuple
    op: callable          # works on NumPy/CuPy arrays, minigrad and torch tensors
    backward: callable    # the hand-written backward on arrays: (gy, a, b) -> (ga, gb)


WORKLOADS = [
    Workload("small add (16,16)", (16, 16), (16, 16), operator.add, add_backward),
    Workload("small matmul (64,64)", (64, 64), (64, 64), operator.matmul, matmul_backward),
]
MODES = ["no autograd", "with autograd"]


@dataclass
class Inputs:
    """Host (NumPy) copies of a workload's inputs and upstream gradient."""
    a: np.ndarray
    b: np.ndarray
    gy: np.ndarray


def make_inputs(workload, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(workload.a_shape, dtype=np.float32)
    b = rng.standard_normal(workload.b_shape, dtype=np.float32)
    gy = np.ones_like(workload.op(a, b))
    return Inputs(a, b, gy)


# --------------------------------------------------------------------------- #
# One step per framework: a function of no arguments that returns its outputs
# --------------------------------------------------------------------------- #
# Each builder returns (step, context): `step()` is what is timed, `context` is
# entered once around the whole timing loop (no_grad() for the forward-only mode).

def raw_array_step(workload, with_grad, inputs, backend):
    """NumPy (or CuPy) alone: the op, and for autograd its hand-written backward."""
    a, b, gy = (backend.from_numpy(x) for x in (inputs.a, inputs.b, inputs.gy))
    op, backward = workload.op, workload.backward
    if not with_grad:
        return (lambda: (op(a, b),)), contextlib.nullcontext

    def step():
        y = op(a, b)
        ga, gb = backward(gy, a, b)
        return y, ga, gb
    return step, contextlib.nullcontext


def minigrad_step(workload, with_grad, inputs, backend):
    a = mg.Tensor(backend.from_numpy(inputs.a), requires_grad=with_grad)
    b = mg.Tensor(backend.from_numpy(inputs.b), requires_grad=with_grad)
    return _framework_step(workload.op, a, b, backend.from_numpy(inputs.gy), with_grad, mg.no_grad)


def torch_step(workload, with_grad, inputs, backend):
    a = torch.from_numpy(inputs.a.copy()).requires_grad_(with_grad)
    b = torch.from_numpy(inputs.b.copy()).requires_grad_(with_grad)
    gy = torch.from_numpy(inputs.gy.copy())
    return _framework_step(workload.op, a, b, gy, with_grad, torch.no_grad)


def _framework_step(op, a, b, gy, with_grad, no_grad):
    """The step of an autograd framework, and the context to time it in."""
    if not with_grad:
        return (lambda: (op(a, b),)), no_grad

    def step():
        a.grad = b.grad = None
        y = op(a, b)
        y.backward(gy)
        return y, a.grad, b.grad
    return step, contextlib.nullcontext


# --------------------------------------------------------------------------- #
# Checking and timing
# --------------------------------------------------------------------------- #

def to_host(x):
    """A NumPy array from a NumPy/CuPy array, a minigrad Tensor or a torch tensor."""
    if isinstance(x, mg.Tensor):
        return x.numpy()
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return mg.backend.to_numpy(x)


def check_step(step, context, workload, with_grad, inputs, label):
    """Run ``step`` once and compare its outputs with NumPy's."""
    a, b, gy = inputs.a, inputs.b, inputs.gy
    expected = (workload.op(a, b),)
    if with_grad:
        expected += workload.backward(gy, a, b)
    with context():
        outputs = step()
    for name, out, want in zip(("y", "ga", "gb"), outputs, expected):
        np.testing.assert_allclose(
            to_host(out), want, rtol=1e-4, atol=1e-4,
            err_msg=f"{label}, {workload.name}: {name} differs from NumPy's",
        )


def time_run(step, number, synchronize):
    """Seconds for ``number`` calls of ``step``, the garbage collector off (as timeit)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        synchronize()
        start = time.perf_counter()
        for _ in range(number):
            step()
        synchronize()            # a GPU step is finished only when the device is
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def best_us_per_op(step, context, number, repeats, synchronize):
    """Warm up, then the best of ``repeats`` runs of ``number`` calls, in µs per call."""
    with context():
        for _ in range(WARMUP_CALLS):
            step()
        best = min(time_run(step, number, synchronize) for _ in range(repeats))
    return best / number * 1e6


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #

def frameworks(backend_name):
    """(label, builder) of each column; PyTorch (CPU) only beside the NumPy backend."""
    baseline = "NumPy" if backend_name == "numpy" else "CuPy"
    columns = [("minigrad", minigrad_step), (baseline, raw_array_step)]
    if torch is not None and backend_name == "numpy":
        columns.append(("PyTorch", torch_step))
    return columns


def synchronizer(backend_name):
    """A function that waits for the device: CuPy's kernels run asynchronously."""
    if backend_name == "cupy":
        device = backend_by_name("cupy").xp.cuda.Device()
        return device.synchronize
    return lambda: None


def run(backend_name, number, repeats):
    """One row per (workload, mode): µs/op per framework and minigrad's ratios."""
    backend = backend_by_name(backend_name)
    synchronize = synchronizer(backend_name)
    columns = frameworks(backend_name)
    rows = []
    for workload in WORKLOADS:
        inputs = make_inputs(workload)
        for mode in MODES:
            with_grad = mode == "with autograd"
            us_per_op = {}
            for label, builder in columns:
                step, context = builder(workload, with_grad, inputs, backend)
                check_step(step, context, workload, with_grad, inputs, label)
                us_per_op[label] = best_us_per_op(step, context, number, repeats, synchronize)
            ratios = {
                f"minigrad/{label}": us_per_op["minigrad"] / us_per_op[label]
                for label, _ in columns[1:]
            }
            rows.append({"workload": workload.name, "mode": mode,
                         "us_per_op": us_per_op, "ratios": ratios})
    return rows


def environment(backend_name, number, repeats):
    """The machine and library versions the numbers belong to."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "minigrad": mg.__version__,
        "backend": backend_name,
        "number": number,
        "repeats": repeats,
        "warmup_calls": WARMUP_CALLS,
    }


def print_report(env, rows):
    labels = list(rows[0]["us_per_op"])
    if env["torch"] is None:
        torch_note = "PyTorch not installed (its columns are left out)"
    elif "PyTorch" not in labels:
        torch_note = f"PyTorch {env['torch']} (CPU, left out beside a GPU backend)"
    else:
        torch_note = f"PyTorch {env['torch']} ({env['torch_threads']} threads)"
    print("# minigrad per-op overhead\n")
    print(f"- machine: {env['platform']}, {env['cpu_count']} CPUs")
    print(f"- Python {env['python']}, NumPy {env['numpy']}, {torch_note}, "
          f"minigrad {env['minigrad']}")
    print(f"- backend: {env['backend']}; best of {env['repeats']} runs of "
          f"{env['number']} calls, after {env['warmup_calls']} warm-up calls\n")

    ratio_names = list(rows[0]["ratios"])
    header = (["workload", "mode"] + [f"{label} µs/op" for label in labels] + ratio_names)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for row in rows:
        cells = [row["workload"], row["mode"]]
        cells += [f"{row['us_per_op'][label]:.2f}" for label in labels]
        cells += [f"{row['ratios'][name]:.1f}x" for name in ratio_names]
        print("| " + " | ".join(cells) + " |")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed runs per cell; the fastest is reported (default 7)")
    parser.add_argument("--number", type=int, default=2000,
                        help="calls per timed run (default 2000)")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                        help="minigrad's backend; with cupy the baseline is raw CuPy "
                             "and PyTorch (CPU) is left out (default numpy)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the environment and results to PATH")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.number < 1:
        parser.error("--repeats and --number must be at least 1")
    if args.backend == "cupy":
        try:
            backend_by_name("cupy")
        except BackendError as error:
            parser.error(str(error))
    return args


def main(argv=None):
    args = parse_args(argv)
    rows = run(args.backend, args.number, args.repeats)
    env = environment(args.backend, args.number, args.repeats)
    print_report(env, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
