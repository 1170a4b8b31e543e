"""Training-step speed: minigrad against PyTorch (CPU), the same model, in one run.

What is measured
----------------
One full training step, float32: ``zero_grad``, forward to the loss, backward,
Adam update (lr 1e-3, PyTorch's defaults otherwise, in both frameworks; W4 and W5
clip the gradient norm to 1 first). The same batch of token ids is used at every
step. W1-W3 are issue 6's workloads (vocabulary V = 1000), W4-W6 issue 15's:

    W1  Transformer   src and tgt Embedding(1000, 256); Transformer(d_model=256,
                      nhead=4, 2 encoder + 2 decoder layers, dim_feedforward=1024,
                      dropout=0); Linear(256, 1000); causal target mask (given as
                      tgt_mask, with tgt_is_causal=True); batch 32, source and
                      target length 32; cross-entropy on the next target token.
                      No positional encoding and no sqrt(d) scale of the
                      embeddings: the benchmark times the layers, not a recipe.
    W2  GRU + Bahdanau  Embedding(1000, 128), shared by source and target;
                      encoder GRU(128, 256); decoder: a Python loop over 32 target
                      steps: context = additive attention of the state over the
                      encoder outputs (score = v^T tanh(W_q h + W_k k_s + b), the
                      keys projected once per batch), h = GRUCell(128 + 256, 256)
                      ([embedded token; context], h); Linear(512, 1000) on
                      [h; context] of every step (one product after the loop);
                      batch 32, lengths 32, teacher forcing.
    W3  LSTM LM       Embedding(1000, 512), LSTM(512, 512, num_layers=2),
                      Linear(512, 1000); batch 32, length 64; next-token
                      cross-entropy.
    W4  train.py      the model ``python train.py`` trains by default
                      (models/transformer.py: Transformer 2+2 layers, d 128, 4
                      heads, feed-forward 256, embeddings times sqrt(d) plus
                      sinusoidal positions) on a batch of its default task (64
                      date pairs, character tokens, padded; source and target
                      padding masked, padding ignored by the loss), with its
                      optimizer: Adam betas (0.9, 0.98), lr 2e-3, gradient norm
                      clipped to 1. Dropout 0 instead of the default 0.1: the two
                      frameworks would draw different dropout masks, and the
                      losses could not be checked equal. PyTorch's twin is
                      written out below (torch.nn.Transformer, the same names).
    W5  GPT           models/gpt.py with nanoGPT's CPU recipe: 4 layers, 4 heads,
                      d_model 128, block 64, batch 12, character vocabulary
                      V = 65, GELU (tanh form), tied output layer; Adam, the
                      gradient norm clipped to 1; next-token cross-entropy. The
                      twin: torch.nn.MultiheadAttention, LayerNorm, Linear (the
                      same names; tests/test_gpt.py's).
    W6  BERT          models/bert.py's masked-LM step: d_model 256, 4 layers, 4
                      heads, feed-forward 1024, exact (erf) GELU, sequence 128,
                      batch 32, V = 1000; [CLS] a [SEP] b [SEP] pairs, 15% of the
                      real tokens chosen (80% of them [MASK]), the MLM head on
                      the chosen positions only; loss = mean MLM cross-entropy +
                      next-sentence cross-entropy. The twin:
                      torch.nn.TransformerEncoder (tests/test_bert.py's).

The tokens/s column is the target tokens of the batch (W4: without padding)
divided by the median step time: the throughput ``train.py`` reports, without
its data loading and logging.

minigrad builds each model (seed 0); PyTorch's twin has the same parameter names
and loads minigrad's ``state_dict`` (``load_state_dict`` of tensors), so both
frameworks start from the same weights and do the same math. Before timing, each
framework trains CHECK_STEPS = 3 steps and the losses of those steps (the initial
loss, then after one and two Adam updates) must agree within 1e-4 (relative), or
the run stops: a ratio of two different computations says nothing. The initial
loss alone would be a weak check: with small random output weights it is close
to log V whatever the model computes; the later ones test the backward and the
update too. (Measured: they agree to about 1e-7.)

Timing: the frameworks alternate step by step in one process (a minigrad step,
then a PyTorch step, and again), so that both see the same machine state, load
and clock. ``--warmup`` rounds are run and dropped, then the median of
``--repeat`` timed steps is reported. The garbage collector is left on (a
training loop pays for it), and ``gc.collect()`` runs, untimed, before every step,
so that no step pays for collecting the other framework's garbage; the objects
that exist before timing (both libraries, the models) are frozen out of the
collector's sight (``gc.freeze``), so that minigrad's collections do not scan
PyTorch's quarter-million objects, which a minigrad-only process would not have.

Memory: by default the run first calls ``minigrad.allocator.reuse_freed_memory()``,
as train.py does: glibc malloc then keeps freed blocks for the next step instead
of returning them to the kernel and page-faulting them in again. It is a process
setting, so PyTorch's CPU allocations (also through malloc) get it too.
``--default-malloc`` leaves glibc's defaults, to see the difference.

BLAS kernels: by default the run first calls ``minigrad.blas.use_widest_kernels()``:
where the CPU has AVX-512 and NumPy's OpenBLAS chose narrower kernels (OpenBLAS 0.3.31
runs its AVX2 "Haswell" kernels on AMD Zen 5), it switches OpenBLAS to its AVX-512
ones, which PyTorch's oneDNN kernels use on such a CPU already; PyTorch's own matrix
products (MKL) are not affected. ``--blas-as-loaded`` keeps the kernels OpenBLAS chose.
The header says which ran.

Threads: both frameworks get ``--threads`` (default: every CPU of the machine).
The environment variables OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS are set before NumPy and PyTorch are imported (NumPy's OpenBLAS
and PyTorch's OpenMP and MKL read them once, at load); ``torch.set_num_threads``
sets PyTorch's intra-op pool; if ``threadpoolctl`` is installed it also limits,
and reports, every BLAS and OpenMP pool loaded in the process. Without it, the
BLAS thread count shown is the environment's, as set here. (When this file is
imported instead of run, only torch.set_num_threads and threadpoolctl apply.)
Not controlled: PyTorch's inter-op pool (an eager training step does not use
it), and how long each pool's idle threads spin before they sleep: OpenBLAS's
and OpenMP's workers may still spin for a moment when the other framework's step
begins. With threads = cores, any other load on the machine (or a pool still
spinning) slows a multi-threaded step a lot; on the 2-core machine this was
written on, single steps were sometimes 10x slower while the machine was busy, and
medians moved by about 15 % between runs. The alternation gives both frameworks
the same conditions; on a busy machine raise ``--repeat`` or use ``--threads 1``.

Peak memory, per step, in MB (10^6 bytes), measured in one extra, untimed step
after the timing, gradients already freed (``zero_grad``) before it starts, so
both numbers count what a step allocates on top of the parameters and the Adam
state that exist before it:

    minigrad peak   ``tracemalloc``'s peak over the step: every block allocated
                    during the step and alive at once at the worst moment. NumPy
                    reports its array buffers to tracemalloc, so this covers the
                    activations kept for backward, the gradients and every
                    temporary, plus the Python objects of the graph. It does not
                    see memory allocated before the step, nor OpenBLAS's own
                    work buffers.
    torch peak      the peak of the CPU allocator's running total during the
                    step, from PyTorch's profiler (``profile_memory=True``; the
                    allocation events of its event tree, an experimental API:
                    "n/a" where it is missing), less the total before the step's
                    first allocation: the profiler's total runs on across
                    profiled steps in one process (a workload measured after
                    others saw their leftover gradients in it: W5's 27.6 MB read
                    75.3 after W1-W4 before this was subtracted). PyTorch keeps
                    no CPU allocator statistics otherwise. It covers tensors
                    (activations, saved tensors, gradients, temporaries), not
                    Python objects nor MKL/oneDNN scratch buffers.

The per-op overhead rows (``--workloads ...,overhead``) are ``overhead.py``'s run
with its own method and defaults (best of 7 runs of 2000 calls, µs per op); see
that file.

PyTorch is optional (not a dependency of minigrad): without it the equality
check is skipped and the tables show minigrad's numbers only. ``--profile W1,W3`` times
nothing: it runs cProfile over one minigrad step of each workload (after
``--warmup`` steps) and prints the top 10 functions of minigrad's files by
cumulative and by own time, to see where a step's time goes.

Why a ratio in one run, not a wall-clock assertion: milliseconds depend on the
CPU, its load and its BLAS; the two frameworks measured side by side share all of
that, so the ratio minigrad/PyTorch is what carries over between machines.

    python benchmarks/train_step.py                          # a few minutes on 2 idle cores
    python benchmarks/train_step.py --workloads W3 --repeat 20 --threads 1
    python benchmarks/train_step.py --profile W1,W3          # cProfile of one minigrad step
    python benchmarks/train_step.py --default-malloc         # without reuse_freed_memory()
    python benchmarks/train_step.py --blas-as-loaded         # OpenBLAS's own choice of kernels
"""
import argparse
import contextlib
import cProfile
import gc
import os
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass

WORKLOAD_NAMES = ("W1", "W2", "W3", "W4", "W5", "W6", "overhead")
MODEL_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def workload_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOAD_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(WORKLOAD_NAMES)}, got {text!r}")
    return names


def model_workload_list(text):
    names = workload_list(text)
    if "overhead" in names:
        raise argparse.ArgumentTypeError(f"can profile only {', '.join(MODEL_WORKLOADS)}, got {text!r}")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=workload_list, default=list(WORKLOAD_NAMES),
                        help="comma-separated, from W1,...,W6,overhead (default: all)")
    parser.add_argument("--repeat", type=int, default=20,
                        help="timed steps per framework and workload; the median is reported (default 20)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps per framework before timing (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help=f"threads for both frameworks (default: all CPUs, {os.cpu_count()} here)")
    parser.add_argument("--profile", type=model_workload_list, metavar="W1,W3",
                        help="instead of the table, cProfile one minigrad step (after --warmup) "
                             "of each workload and print its top 10 minigrad functions by "
                             "cumulative and by own time")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's malloc defaults (by default reuse_freed_memory() is "
                             "applied, as train.py does)")
    parser.add_argument("--blas-as-loaded", action="store_true",
                        help="keep the BLAS kernels OpenBLAS chose (by default "
                             "minigrad.blas.use_widest_kernels() is applied)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeat and --threads must be at least 1, --warmup at least 0")
    return args


# The thread counts must be in the environment before NumPy (OpenBLAS) and PyTorch
# (OpenMP, MKL) are loaded: they read them once, at import.
if __name__ == "__main__":
    threads = str(parse_args().threads)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = threads

# This checkout's minigrad, and overhead.py beside this file.
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCHMARKS))
sys.path.insert(0, BENCHMARKS)

import numpy as np        # noqa: E402

import minigrad as mg     # noqa: E402
from minigrad import nn, optim   # noqa: E402
from minigrad import blas                # noqa: E402
from minigrad.allocator import reuse_freed_memory   # noqa: E402

try:
    import torch          # noqa: E402
except ImportError:
    torch = None

try:
    import threadpoolctl  # noqa: E402
except ImportError:
    threadpoolctl = None

V = 1000                                  # vocabulary of W1-W3
PAD = 0                                   # W4's padding id (minigrad.data.PAD_ID)
LOSS_RTOL = 1e-4
CHECK_STEPS = 3
TorchModule = torch.nn.Module if torch is not None else object


# --------------------------------------------------------------------------- #
# W1: Transformer
# --------------------------------------------------------------------------- #
# B batch, S source length, T target length, D = 256 model width, V vocabulary.

TRANSFORMER_ARGS = dict(d_model=256, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                        dim_feedforward=1024, dropout=0.0)


class MinigradTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(V, 256)
        self.tgt_embed = nn.Embedding(V, 256)
        self.transformer = nn.Transformer(**TRANSFORMER_ARGS)
        self.out = nn.Linear(256, V)

    def forward(self, src, tgt_in, tgt_out, tgt_mask):
        x = self.transformer(self.src_embed(src), self.tgt_embed(tgt_in),
                             tgt_mask=tgt_mask, tgt_is_causal=True)           # (B, T, D)
        logits = self.out(x)                                                  # (B, T, V)
        return mg.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1))


class TorchTransformer(TorchModule):
    def __init__(self):
        super().__init__()
        self.src_embed = torch.nn.Embedding(V, 256)
        self.tgt_embed = torch.nn.Embedding(V, 256)
        self.transformer = torch.nn.Transformer(**TRANSFORMER_ARGS, batch_first=True)
        self.out = torch.nn.Linear(256, V)

    def forward(self, src, tgt_in, tgt_out, tgt_mask):
        x = self.transformer(self.src_embed(src), self.tgt_embed(tgt_in),
                             tgt_mask=tgt_mask, tgt_is_causal=True)           # (B, T, D)
        logits = self.out(x)                                                  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1))


def minigrad_transformer_inputs(arrays):
    src, tgt_in, tgt_out = (mg.Tensor(a) for a in arrays)
    return src, tgt_in, tgt_out, nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])


def torch_transformer_inputs(arrays):
    src, tgt_in, tgt_out = (torch.from_numpy(a.copy()) for a in arrays)
    return src, tgt_in, tgt_out, torch.nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])


# --------------------------------------------------------------------------- #
# W2: GRU encoder, GRUCell decoder with additive (Bahdanau) attention
# --------------------------------------------------------------------------- #
# B batch, S source length, T target length, E = 128 embedding width,
# H = 256 hidden size (and attention width), V vocabulary.

class MinigradGRUAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, 128)
        self.encoder = nn.GRU(128, 256)
        self.attention = nn.AdditiveAttention(256, 256, 256)
        self.decoder = nn.GRUCell(128 + 256, 256)
        self.out = nn.Linear(512, V)

    def forward(self, src, tgt_in, tgt_out):
        B, T = tgt_in.shape
        keys, h_n = self.encoder(self.embed(src))                            # (B, S, H), (1, B, H)
        projected_keys = self.attention.project_keys(keys)                   # (B, S, H)
        h = h_n.reshape(B, 256)                                              # (B, H)
        inputs = mg.split(self.embed(tgt_in), T, axis=1)                     # T of (B, 1, E)
        features = []
        for y in inputs:
            context, _ = self.attention(h, keys, projected_keys=projected_keys)   # (B, H)
            h = self.decoder(mg.concatenate([y.reshape(B, 128), context], axis=-1), h)   # (B, H)
            features.append(mg.concatenate([h, context], axis=-1))          # (B, 2H)
        logits = self.out(mg.stack(features, axis=1))                        # (B, T, V)
        return mg.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1))


class TorchAdditiveAttention(TorchModule):
    """minigrad's AdditiveAttention, its parameter names, written out."""

    def __init__(self):
        super().__init__()
        self.query_proj = torch.nn.Linear(256, 256, bias=False)              # W_q
        self.key_proj = torch.nn.Linear(256, 256)                            # W_k, b
        self.v = torch.nn.Linear(256, 1, bias=False)                         # v^T

    def forward(self, h, keys, projected_keys):
        hidden = torch.tanh(self.query_proj(h).unsqueeze(1) + projected_keys)   # (B, S, H)
        weights = torch.softmax(self.v(hidden).squeeze(-1), dim=-1)         # (B, S)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)             # (B, H)


class TorchGRUAttention(TorchModule):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, 128)
        self.encoder = torch.nn.GRU(128, 256, batch_first=True)
        self.attention = TorchAdditiveAttention()
        self.decoder = torch.nn.GRUCell(128 + 256, 256)
        self.out = torch.nn.Linear(512, V)

    def forward(self, src, tgt_in, tgt_out):
        keys, h_n = self.encoder(self.embed(src))                            # (B, S, H), (1, B, H)
        projected_keys = self.attention.key_proj(keys)                       # (B, S, H)
        h = h_n[0]                                                           # (B, H)
        features = []
        for y in self.embed(tgt_in).unbind(1):                               # T of (B, E)
            context = self.attention(h, keys, projected_keys)                # (B, H)
            h = self.decoder(torch.cat([y, context], dim=-1), h)             # (B, H)
            features.append(torch.cat([h, context], dim=-1))                 # (B, 2H)
        logits = self.out(torch.stack(features, dim=1))                      # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1))


# --------------------------------------------------------------------------- #
# W3: LSTM language model
# --------------------------------------------------------------------------- #
# B batch, T length, H = 512 width, V vocabulary.

class MinigradLSTMLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, 512)
        self.lstm = nn.LSTM(512, 512, num_layers=2)
        self.out = nn.Linear(512, V)

    def forward(self, tokens_in, tokens_out):
        h, _ = self.lstm(self.embed(tokens_in))                              # (B, T, H)
        logits = self.out(h)                                                 # (B, T, V)
        return mg.cross_entropy(logits.reshape(-1, V), tokens_out.reshape(-1))


class TorchLSTMLM(TorchModule):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, 512)
        self.lstm = torch.nn.LSTM(512, 512, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(512, V)

    def forward(self, tokens_in, tokens_out):
        h, _ = self.lstm(self.embed(tokens_in))                              # (B, T, H)
        logits = self.out(h)                                                 # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens_out.reshape(-1))


def seq2seq_batch(rng):
    src = rng.integers(0, V, (32, 32))                                       # (B, S)
    tgt = rng.integers(0, V, (32, 33))                                       # (B, T + 1)
    return src, tgt[:, :-1], tgt[:, 1:]


def language_model_batch(rng):
    tokens = rng.integers(0, V, (32, 65))                                    # (B, T + 1)
    return tokens[:, :-1], tokens[:, 1:]


def minigrad_tensors(arrays):
    return tuple(mg.Tensor(a) for a in arrays)


def torch_tensors(arrays):
    return tuple(torch.from_numpy(a.copy()) for a in arrays)


# --------------------------------------------------------------------------- #
# W4: train.py's default model on a batch of its default task
# --------------------------------------------------------------------------- #
# B = 64 pairs, S longest source, T longest target + 1, D = 128, V_src, V_tgt the
# character vocabularies of the date task.

def train_py_default_objective():
    """train.py's default run (its own parser and config), dropout 0 (see the module
    docstring): the objective holds the data, tokenizers and the model's settings."""
    if "objective" not in _date_batch:
        import dataclasses

        import train
        from models.objectives import make_objective
        args, _ = train.parse_args([])
        config = dataclasses.replace(train.new_config(args), dropout=0.0)
        _date_batch["objective"] = make_objective(config)
    return _date_batch["objective"]


_date_batch = {}


def date_task_batch(rng=None):
    """The first batch of train.py's first epoch: (src, src_lengths, tgt_in, tgt_out)
    as NumPy arrays (``rng`` unused: the batch is train.py's, from its seed)."""
    first = train_py_default_objective().train_batch(0)
    return first.src, first.src_lengths, first.tgt_in, first.tgt_out


class MinigradTrainPyDefault(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = train_py_default_objective().build_model()

    def forward(self, src, src_lengths, tgt_in, tgt_out):
        logits, _ = self.model(src, src_lengths, tgt_in)                   # (B, T, V_tgt)
        return mg.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                ignore_index=PAD)


class TorchSeq2SeqTransformer(TorchModule):
    """models/transformer.py's TransformerSeq2Seq in PyTorch, with its names (dropout
    where minigrad's model has it: after the positions, and in every layer)."""

    def __init__(self, config, src_vocab, tgt_vocab, dropout=0.0):
        super().__init__()
        D = config.d_model
        self.d_model = D
        self.src_embed = torch.nn.Embedding(src_vocab, D, padding_idx=PAD)
        self.tgt_embed = torch.nn.Embedding(tgt_vocab, D, padding_idx=PAD)
        # minigrad's table (not in its state_dict: a non-persistent buffer), as float32
        from minigrad.nn.positional_encoding import sinusoidal_positional_encoding
        table = sinusoidal_positional_encoding(config.max_positions, D, dtype="float32")
        self.register_buffer("pe", torch.from_numpy(table.numpy()), persistent=False)  # (L, D)
        self.transformer = torch.nn.Transformer(
            D, config.heads, config.layers, config.layers, config.ff, dropout=dropout,
            batch_first=True)
        self.generator = torch.nn.Linear(D, tgt_vocab)
        self.dropout = torch.nn.Dropout(dropout)

    def embed(self, embedding, tokens):
        return self.dropout(embedding(tokens) * self.d_model ** 0.5 + self.pe[:tokens.shape[1]])  # (B, L, D)

    def forward(self, src, src_lengths, tgt_in):
        S, T = src.shape[1], tgt_in.shape[1]
        src_padding = torch.arange(S)[None, :] >= src_lengths[:, None]      # (B, S)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)                  # (T, T)
        memory = self.transformer.encoder(self.embed(self.src_embed, src),
                                          src_key_padding_mask=src_padding)  # (B, S, D)
        h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory, tgt_mask=causal,
                                     memory_key_padding_mask=src_padding)   # (B, T, D)
        return self.generator(h)                                             # (B, T, V_tgt)


class TorchTrainPyDefault(TorchModule):
    def __init__(self):
        super().__init__()
        objective = train_py_default_objective()
        self.model = TorchSeq2SeqTransformer(objective.config, objective.src_tok.vocab_size,
                                             objective.tgt_tok.vocab_size)

    def forward(self, src, src_lengths, tgt_in, tgt_out):
        logits = self.model(src, src_lengths, tgt_in)                        # (B, T, V_tgt)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 tgt_out.reshape(-1), ignore_index=PAD)


# --------------------------------------------------------------------------- #
# W5: GPT (nanoGPT's CPU recipe)
# --------------------------------------------------------------------------- #
# B = 12 windows, T = 64 positions, D = 128, V = 65 characters.

GPT_VOCAB, GPT_BLOCK, GPT_BATCH = 65, 64, 12


def gpt_config():
    from models.gpt import GPTConfig
    return GPTConfig(vocab_size=GPT_VOCAB, block_size=GPT_BLOCK, n_layer=4, n_head=4, d_model=128,
                     dropout=0.0)


class MinigradGPT(nn.Module):
    def __init__(self):
        super().__init__()
        from models.gpt import GPT
        self.model = GPT(gpt_config())

    def forward(self, x, y):
        logits = self.model(x)                                               # (B, T, V)
        return mg.cross_entropy(logits.reshape(-1, GPT_VOCAB), y.reshape(-1))


class TorchGPTBlock(TorchModule):
    def __init__(self, D, h):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(D)
        self.attn = torch.nn.MultiheadAttention(D, h, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(D)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(D, 4 * D)
        self.mlp.c_proj = torch.nn.Linear(4 * D, D)

    def forward(self, x, causal):
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, attn_mask=causal, need_weights=False)     # (B, T, D)
        x = x + a
        u = self.mlp.c_fc(self.ln_2(x))                                      # (B, T, 4D)
        return x + self.mlp.c_proj(torch.nn.functional.gelu(u, approximate="tanh"))


class TorchGPT(TorchModule):
    """models/gpt.py's GPT from torch.nn, with its names (tests/test_gpt.py's twin;
    dropout 0, as the recipe)."""

    def __init__(self, config=None):
        super().__init__()
        c = config or gpt_config()
        self.vocab_size = c.vocab_size
        self.model = torch.nn.Module()
        self.model.wte = torch.nn.Embedding(c.vocab_size, c.d_model)
        self.model.wpe = torch.nn.Embedding(c.block_size, c.d_model)
        self.model.blocks = torch.nn.ModuleList(TorchGPTBlock(c.d_model, c.n_head) for _ in range(c.n_layer))
        self.model.ln_f = torch.nn.LayerNorm(c.d_model)
        self.model.lm_head = torch.nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.model.lm_head.weight = self.model.wte.weight                    # tied

    def forward(self, x, y):
        T = x.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)                  # (T, T), True: hidden
        h = self.model.wte(x) + self.model.wpe(torch.arange(T))              # (B, T, D)
        for block in self.model.blocks:
            h = block(h, causal)
        logits = self.model.lm_head(self.model.ln_f(h))                      # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab_size), y.reshape(-1))


def gpt_batch(rng):
    windows = rng.integers(0, GPT_VOCAB, (GPT_BATCH, GPT_BLOCK + 1))         # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


# --------------------------------------------------------------------------- #
# W6: BERT, a masked-LM step
# --------------------------------------------------------------------------- #
# B = 32 pairs, T = 128, D = 256, V = 1000 (ids 0-3 the specials [PAD] [CLS] [SEP] [MASK]).

BERT_VOCAB, BERT_T, BERT_BATCH = 1000, 128, 32
BERT_CLS, BERT_SEP, BERT_MASK = 1, 2, 3


def bert_config():
    from models.bert import BERTConfig
    return BERTConfig(vocab_size=BERT_VOCAB, max_positions=BERT_T, n_layer=4, n_head=4, d_model=256,
                      d_ff=1024, dropout=0.0, gelu_approximate="none")


class MinigradBERT(nn.Module):
    def __init__(self):
        super().__init__()
        from models.bert import BERT
        self.model = BERT(bert_config())

    def forward(self, tokens, segments, chosen, mlm_labels, nsp_labels):
        from models.bert import bert_loss
        mlm_logits, nsp_logits = self.model(tokens, segments, mlm_positions=chosen)   # (N, V), (B, 2)
        return bert_loss(mlm_logits, mlm_labels.data[chosen.data], nsp_logits, nsp_labels)[0]


class TorchBERT(TorchModule):
    """models/bert.py's BERT from torch.nn, with its names (tests/test_bert.py's twin)."""

    def __init__(self):
        super().__init__()
        c = bert_config()
        D, V, eps = c.d_model, c.vocab_size, c.layer_norm_eps
        self.model = torch.nn.Module()
        m = self.model
        m.embeddings = torch.nn.Module()
        m.embeddings.token_embeddings = torch.nn.Embedding(V, D)
        m.embeddings.segment_embeddings = torch.nn.Embedding(c.type_vocab_size, D)
        m.embeddings.position_embeddings = torch.nn.Embedding(c.max_positions, D)
        m.embeddings.norm = torch.nn.LayerNorm(D, eps=eps)
        layer = torch.nn.TransformerEncoderLayer(D, c.n_head, c.d_ff, 0.0, activation=torch.nn.functional.gelu,
                                                 layer_norm_eps=eps, batch_first=True)
        m.encoder = torch.nn.TransformerEncoder(layer, c.n_layer, enable_nested_tensor=False)
        m.mlm_head = torch.nn.Module()
        m.mlm_head.transform = torch.nn.Linear(D, D)
        m.mlm_head.norm = torch.nn.LayerNorm(D, eps=eps)
        m.mlm_head.decoder = torch.nn.Linear(D, V)
        m.mlm_head.decoder.weight = m.embeddings.token_embeddings.weight     # tied
        m.nsp_head = torch.nn.Module()
        m.nsp_head.pooler = torch.nn.Linear(D, D)
        m.nsp_head.classifier = torch.nn.Linear(D, 2)

    def forward(self, tokens, segments, chosen, mlm_labels, nsp_labels):
        m, T = self.model, tokens.shape[1]
        e = m.embeddings
        x = e.norm(e.token_embeddings(tokens) + e.segment_embeddings(segments)
                   + e.position_embeddings.weight[:T])                       # (B, T, D)
        h = m.encoder(x, src_key_padding_mask=tokens == 0)                   # (B, T, D)
        z = m.mlm_head.norm(torch.nn.functional.gelu(m.mlm_head.transform(h[chosen])))   # (N, D)
        mlm_logits = m.mlm_head.decoder(z)                                   # (N, V)
        nsp_logits = m.nsp_head.classifier(torch.tanh(m.nsp_head.pooler(h[:, 0])))       # (B, 2)
        return torch.nn.functional.cross_entropy(mlm_logits, mlm_labels[chosen]) + \
            torch.nn.functional.cross_entropy(nsp_logits, nsp_labels)


def bert_batch(rng):
    """(tokens, segments, chosen, mlm_labels, nsp_labels): B pairs [CLS] a [SEP] b [SEP]
    of random real tokens (a and b of random lengths, no padding), 15% of the real
    tokens chosen, 80% of those replaced by [MASK], 10% by a random token."""
    B, T = BERT_BATCH, BERT_T
    original = rng.integers(4, BERT_VOCAB, (B, T))                           # (B, T)
    cut = rng.integers(T // 4, 3 * T // 4, B)                                # [SEP] after a
    original[:, 0], original[np.arange(B), cut], original[:, -1] = BERT_CLS, BERT_SEP, BERT_SEP
    segments = (np.arange(T)[None, :] > cut[:, None]).astype(np.int64)       # (B, T)
    real = original >= 4
    chosen = real & (rng.random((B, T)) < 0.15)
    draw = rng.random((B, T))
    tokens = np.where(chosen & (draw < 0.8), BERT_MASK, original)
    tokens = np.where(chosen & (draw >= 0.8) & (draw < 0.9), rng.integers(4, BERT_VOCAB, (B, T)), tokens)
    mlm_labels = np.where(chosen, original, -100)
    return tokens, segments, chosen, mlm_labels, rng.integers(0, 2, B)


def minigrad_seq2seq_inputs(arrays):
    src, src_lengths, tgt_in, tgt_out = arrays
    return mg.Tensor(src), src_lengths, mg.Tensor(tgt_in), mg.Tensor(tgt_out)


@dataclass
class Workload:
    name: str
    title: str
    make_batch: callable          # rng -> tuple of NumPy integer arrays
    minigrad_model: type
    minigrad_inputs: callable     # arrays -> the model's arguments
    torch_model: type
    torch_inputs: callable
    optimizer: dict = None        # Adam's arguments (default lr 1e-3)
    clip: float = None            # clip the gradient norm to this before the update
    tokens: callable = None       # arrays -> target tokens in the batch (default: all of the last)


WORKLOADS = {
    "W1": Workload("W1", "Transformer (2+2 layers, d 256), B 32, S = T = 32", seq2seq_batch,
                   MinigradTransformer, minigrad_transformer_inputs,
                   TorchTransformer, torch_transformer_inputs),
    "W2": Workload("W2", "GRU + Bahdanau attention (H 256), B 32, S = T = 32", seq2seq_batch,
                   MinigradGRUAttention, minigrad_tensors, TorchGRUAttention, torch_tensors),
    "W3": Workload("W3", "LSTM LM (2 layers, H 512), B 32, T 64", language_model_batch,
                   MinigradLSTMLM, minigrad_tensors, TorchLSTMLM, torch_tensors),
    "W4": Workload("W4", "train.py default: Transformer (2+2, d 128) on dates, B 64", date_task_batch,
                   MinigradTrainPyDefault, minigrad_seq2seq_inputs, TorchTrainPyDefault, torch_tensors,
                   optimizer=dict(lr=2e-3, betas=(0.9, 0.98)), clip=1.0,
                   tokens=lambda arrays: int((arrays[-1] != PAD).sum())),
    "W5": Workload("W5", "GPT (4 layers, d 128, nanoGPT's CPU recipe), B 12, T 64", gpt_batch,
                   MinigradGPT, minigrad_tensors, TorchGPT, torch_tensors, clip=1.0),
    "W6": Workload("W6", "BERT masked LM (4 layers, d 256, erf GELU), B 32, T 128", bert_batch,
                   MinigradBERT, minigrad_tensors, TorchBERT, torch_tensors,
                   tokens=lambda arrays: arrays[0].size),
}


# --------------------------------------------------------------------------- #
# One training step per framework
# --------------------------------------------------------------------------- #

class Trainer:
    """A model, its Adam optimizer and the inputs of one batch; ``step()`` trains once
    (``clip``: the framework's clip_grad_norm_ with its maximum norm, or None)."""

    def __init__(self, model, optimizer, inputs, clip=None):
        self.model, self.optimizer, self.inputs, self.clip = model, optimizer, inputs, clip

    def step(self):
        self.optimizer.zero_grad()
        loss = self.model(*self.inputs)
        loss.backward()
        if self.clip is not None:
            self.clip(self.model.parameters())
        self.optimizer.step()
        return loss.item()


def build_trainers(workload, with_torch):
    """{"minigrad": Trainer, "PyTorch": Trainer} on one batch, with the same initial weights."""
    mg.manual_seed(0)
    arrays = workload.make_batch(np.random.default_rng(0))
    model = workload.minigrad_model()
    adam = workload.optimizer or dict(lr=1e-3)
    clip = workload.clip
    trainers = {"minigrad": Trainer(model, optim.Adam(model.parameters(), **adam),
                                    workload.minigrad_inputs(arrays),
                                    clip and (lambda params: optim.clip_grad_norm_(params, clip)))}
    if with_torch:
        twin = workload.torch_model()
        twin.load_state_dict({name: torch.from_numpy(array)
                              for name, array in model.state_dict().items()})
        trainers["PyTorch"] = Trainer(twin, torch.optim.Adam(twin.parameters(), **adam),
                                      workload.torch_inputs(arrays),
                                      clip and (lambda params: torch.nn.utils.clip_grad_norm_(params, clip)))
    return trainers


def check_same_math(workload, trainers):
    """Train each framework CHECK_STEPS steps; their losses must agree step by step.

    Returns {label: [loss before the first update, after one update, ...]}."""
    losses = {label: [trainer.step() for _ in range(CHECK_STEPS)]
              for label, trainer in trainers.items()}
    if "PyTorch" in losses:
        for step, (mine, theirs) in enumerate(zip(losses["minigrad"], losses["PyTorch"])):
            if abs(mine - theirs) > LOSS_RTOL * abs(theirs):
                raise SystemExit(
                    f"{workload.name}: the losses after {step} Adam updates differ beyond "
                    f"{LOSS_RTOL} relative: minigrad {mine!r}, PyTorch {theirs!r}; the "
                    f"frameworks do not compute the same thing, so the timing would not be fair")
    return losses


def timed_medians(trainers, warmup, repeat):
    """Alternate the frameworks step by step; the median seconds of each after warm-up."""
    times = {label: [] for label in trainers}
    for round_ in range(warmup + repeat):
        for label, trainer in trainers.items():
            gc.collect()
            start = time.perf_counter()
            trainer.step()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[label].append(elapsed)
    return {label: statistics.median(seconds) for label, seconds in times.items()}


def minigrad_peak_bytes(trainer):
    """tracemalloc's peak over one step: what the step allocates on top of what exists."""
    trainer.optimizer.zero_grad()
    gc.collect()
    tracemalloc.start()
    try:
        trainer.step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@contextlib.contextmanager
def stderr_to_devnull():
    """Silence C++ writes to file descriptor 2 (the profiler logs its start and stop there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def torch_peak_bytes(trainer):
    """The peak of PyTorch's CPU allocator total over one step (its profiler), or None."""
    trainer.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile
        with stderr_to_devnull(), profile(activities=[ProfilerActivity.CPU],
                                          profile_memory=True) as prof:
            trainer.step()
        events = []                      # (time, size of this allocation or -free, total after it)
        nodes = list(prof.profiler.kineto_results.experimental_event_tree())
        while nodes:
            node = nodes.pop()
            if node.tag == _EventType.Allocation:
                fields = node.extra_fields
                events.append((node.start_time_ns, fields.alloc_size, fields.total_allocated))
            nodes.extend(node.children)
    except (ImportError, AttributeError, RuntimeError):
        return None
    if not events:
        return 0
    # The running total is the process's since its first profiled allocation, not the
    # step's: subtract the total before the step's first event.
    events.sort()
    _, size, total = events[0]
    before = total - size
    return max(0, max(total for _, _, total in events) - before)


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #

def run_workload(workload, warmup, repeat):
    trainers = build_trainers(workload, with_torch=torch is not None)
    losses = check_same_math(workload, trainers)
    # Everything alive now (modules of both libraries, models, optimizers) moves out
    # of the collector's sight while timing: a collection then scans only what the
    # steps make, and minigrad does not pay for scanning PyTorch's objects.
    gc.collect()
    gc.freeze()
    try:
        medians = timed_medians(trainers, warmup, repeat)
        peaks = {"minigrad": minigrad_peak_bytes(trainers["minigrad"])}
        if "PyTorch" in trainers:
            peaks["PyTorch"] = torch_peak_bytes(trainers["PyTorch"])
    finally:
        gc.unfreeze()
    arrays = workload.make_batch(np.random.default_rng(0))
    tokens = workload.tokens(arrays) if workload.tokens else arrays[-1].size
    return {"workload": workload, "losses": losses, "median_s": medians, "peak_bytes": peaks,
            "tokens": tokens}


def run_overhead():
    """overhead.py's rows (its own timing: best of runs of many calls)."""
    import overhead
    return overhead.run("numpy", number=2000, repeats=7)


def profile_workload(workload, warmup, top=10):
    """cProfile one minigrad step after warm-up; print the top minigrad functions."""
    trainer = build_trainers(workload, with_torch=False)["minigrad"]
    for _ in range(warmup):
        trainer.step()
    gc.collect()
    profiler = cProfile.Profile()
    profiler.runcall(trainer.step)
    stats = pstats.Stats(profiler)
    print(f"## cProfile of one minigrad step: {workload.name}, {workload.title}\n")
    print(f"total {stats.total_tt * 1e3:.0f} ms under the profiler\n")
    for order, meaning in (("cumulative", "cumulative time (the function and what it calls)"),
                           ("tottime", "own time (excluding what it calls)")):
        print(f"### top {top} functions of minigrad/ by {meaning}")
        stats.sort_stats(order).print_stats(r"minigrad[/\\]", top)


def limit_threads(threads):
    """Apply the thread count in this process (the limits hold until the process ends)."""
    if torch is not None:
        torch.set_num_threads(threads)
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(limits=threads)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_report(threads):
    """What each thread pool was told, and what it reports where it can."""
    parts = [f"--threads {threads}"]
    if torch is not None:
        parts.append(f"torch.get_num_threads() = {torch.get_num_threads()}")
    if threadpoolctl is not None:
        pools = threadpoolctl.threadpool_info()
        parts.append("threadpoolctl: " + ", ".join(
            f"{pool['internal_api']} {pool['num_threads']}" for pool in pools))
    else:
        parts.append("threadpoolctl not installed; environment: " + ", ".join(
            f"{name}={os.environ.get(name, 'unset')}" for name in THREAD_VARIABLES))
    return "; ".join(parts)


def print_header(args, load_before):
    torch_note = f"PyTorch {torch.__version__} (CPU)" if torch is not None \
        else "PyTorch not installed (minigrad's numbers only)"
    print("# minigrad training step against PyTorch (CPU)\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} CPUs; {platform.platform()}")
    print(f"- Python {platform.python_version()}, NumPy {np.__version__}, {torch_note}, "
          f"minigrad {mg.__version__}")
    print(f"- threads: {thread_report(args.threads)}")
    alternating = ", the frameworks alternating step by step" if torch is not None else ""
    print(f"- float32, Adam (lr 1e-3; W4 as train.py; W4, W5 clipped to norm 1); median of {args.repeat} steps after {args.warmup} warm-up "
          f"steps{alternating}")
    print(f"- malloc: {args.malloc}")
    print(f"- BLAS: {args.blas}")
    print(f"- load average at start (1, 5, 15 min): {load_before}")


def print_losses(results):
    same = " (the same weights; each step agrees within 1e-4 relative)" if torch is not None else ""
    print(f"\nLosses on the batch: initial, after 1 and {CHECK_STEPS - 1} Adam updates{same}:\n")
    for result in results:
        cells = "; ".join(f"{label} " + ", ".join(f"{loss:.6f}" for loss in losses)
                          for label, losses in result["losses"].items())
        print(f"- {result['workload'].name}: {cells}")


def megabytes(n):
    return "n/a" if n is None else f"{n / 1e6:.1f}"


def print_table(results):
    with_torch = torch is not None
    header = ["workload", "minigrad ms"] + (["PyTorch ms", "ratio"] if with_torch else []) \
        + ["minigrad tokens/s"] + (["PyTorch tokens/s"] if with_torch else []) \
        + ["minigrad peak MB"] + (["torch peak MB"] if with_torch else [])
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for result in results:
        workload, medians, peaks = result["workload"], result["median_s"], result["peak_bytes"]
        cells = [f"{workload.name} {workload.title}", f"{medians['minigrad'] * 1e3:.1f}"]
        if with_torch:
            cells += [f"{medians['PyTorch'] * 1e3:.1f}",
                      f"{medians['minigrad'] / medians['PyTorch']:.2f}x"]
        cells += [f"{result['tokens'] / medians[label]:,.0f}" for label in medians]
        cells.append(megabytes(peaks["minigrad"]))
        if with_torch:
            cells.append(megabytes(peaks["PyTorch"]))
        print("| " + " | ".join(cells) + " |")
    print()
    if with_torch:
        print("ratio = minigrad ms / PyTorch ms (below 1.00x: minigrad faster).")
    print("Peak MB: what one step allocates on top of the parameters and the Adam state "
          "(see the docstring).")


def print_overhead(rows):
    labels = [label for label in rows[0]["us_per_op"] if label != "NumPy"]
    header = ["per-op overhead (overhead.py)", "mode"] + [f"{label} µs" for label in labels] \
        + (["minigrad/PyTorch"] if "PyTorch" in labels else [])
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for row in rows:
        cells = [row["workload"], row["mode"]] + [f"{row['us_per_op'][label]:.2f}" for label in labels]
        if "PyTorch" in labels:
            cells.append(f"{row['ratios']['minigrad/PyTorch']:.1f}x")
        print("| " + " | ".join(cells) + " |")
    print("\n(best of 7 runs of 2000 calls each, garbage collector off; see benchmarks/overhead.py)")


def main(argv=None):
    args = parse_args(argv)
    limit_threads(args.threads)
    if not args.default_malloc:
        args.malloc = "reuse_freed_memory() " + ("applied" if reuse_freed_memory() else
                                                 "not available here (not glibc)")
    else:
        args.malloc = "glibc defaults (--default-malloc)"
    args.blas = (f"kept as loaded: OpenBLAS {blas.openblas_core()} (--blas-as-loaded)" if args.blas_as_loaded
                 else blas.use_widest_kernels())
    if args.profile:
        for name in args.profile:
            profile_workload(WORKLOADS[name], args.warmup)
        return
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print_header(args, load_before)
    results = [run_workload(WORKLOADS[name], args.warmup, args.repeat)
               for name in args.workloads if name in WORKLOADS]
    if results:
        print_losses(results)
        print_table(results)
    if "overhead" in args.workloads:
        print_overhead(run_overhead())
    print(f"\nload average at the end (1, 5, 15 min): "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
