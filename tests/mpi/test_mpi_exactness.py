"""Data parallelism is exact: N ranks on the parts of a batch take the step one process
takes on the whole batch (float64, dropout 0), for the Transformer and RNN models.

Each rank's loss is its token-loss *sum* times N / T (T: the global batch's target
tokens), so that the average that ``all_reduce_gradients`` forms is the gradient of the
one-process loss, the mean over all T tokens (the module docstring of
minigrad/distributed.py shows why; the mean of per-rank means is not it).
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import distributed as dist
from minigrad import optim
from minigrad.data.batching import Batch
from minigrad.nn import functional as F
from models.seq2seq import RNNSeq2Seq
from models.transformer import TransformerSeq2Seq

PAD, BOS, EOS = 0, 1, 2
V = 11
KINDS = {
    "transformer": lambda: TransformerSeq2Seq(V, V, d_model=16, nhead=2, num_encoder_layers=1,
                                              num_decoder_layers=1, dim_feedforward=32, dropout=0.0),
    "gru-bahdanau": lambda: RNNSeq2Seq(V, V, 8, 16, cell="gru", attention="bahdanau"),
    "lstm-luong-general-bidirectional": lambda: RNNSeq2Seq(V, V, 8, 16, cell="lstm", attention="luong-general",
                                                           bidirectional=True),
}


def random_batch(B, rng):
    """B random pairs of lengths 1..6, padded as ``minigrad.data.batching.Batch``."""
    sources = [rng.integers(3, V, rng.integers(1, 7)) for _ in range(B)]
    targets = [rng.integers(3, V, rng.integers(1, 7)) for _ in range(B)]
    S, T = max(map(len, sources)), max(map(len, targets)) + 1
    src, tgt_in, tgt_out = (np.full((B, n), PAD) for n in (S, T, T))
    for i, (s, t) in enumerate(zip(sources, targets)):
        src[i, :len(s)] = s
        tgt_in[i, 0], tgt_in[i, 1:len(t) + 1] = BOS, t
        tgt_out[i, :len(t)], tgt_out[i, len(t)] = t, EOS
    return Batch(src, np.array([len(s) for s in sources]), tgt_in, tgt_out,
                 np.array([len(t) + 1 for t in targets]))


def token_loss(model, batch, rows, reduction):
    """Cross-entropy over the target tokens of ``rows`` of the batch (padding ignored)."""
    logits, _ = model(mg.Tensor(batch.src[rows]), batch.src_lengths[rows], mg.Tensor(batch.tgt_in[rows]),
                      batch.tgt_lengths[rows])                                     # (b, T, V)
    return F.cross_entropy(logits.reshape(-1, V), mg.Tensor(batch.tgt_out[rows].reshape(-1)),
                           ignore_index=PAD, reduction=reduction)


def relative_error(actual, expected):
    """max |actual - expected| / max |expected| (0 when both are 0)."""
    scale = max(np.abs(expected).max(), np.finfo(np.float64).tiny)
    return np.abs(actual - expected).max() / scale


LR = 1e-2


@pytest.mark.mpi
@pytest.mark.parametrize("B", [6, 5], ids=["B6", "B5-uneven"])
@pytest.mark.parametrize("kind", KINDS)
def test_data_parallel_steps_equal_one_process_steps(kind, B):
    """Three Adam steps: the averaged gradients and the updated parameters agree with
    one process to 1e-12, on every rank.

    Adam divides by sqrt(v) + eps, so where a gradient is zero up to rounding (the key
    bias of attention: softmax ignores a shift of all scores, so its gradient is 0, and
    1e-18 of rounding remains) it steps by ~lr * noise / eps, whose sign depends on the
    order of the sums (and one run may round it to exactly 0 where the other keeps
    1e-18). Those coordinates (0 < |g| <= 1e-12 max |g| of the one process, in either
    run) are held to "did not learn": |change| <= 1e-6 lr per step in both runs; every
    other coordinate, exact zeros in both runs included, to 1e-12."""
    N = dist.get_world_size()
    mg.manual_seed(1 + dist.get_rank())              # differently seeded ranks ...
    model = KINDS[kind]().double()
    dist.broadcast_parameters(model)                 # ... start identical
    single = KINDS[kind]().double()                  # one process on the whole batch
    single.load_state_dict(model.state_dict())
    start = {name: p.data.copy() for name, p in single.named_parameters()}
    zero_grad = {name: np.zeros(p.shape, bool) for name, p in single.named_parameters()}
    opt = optim.Adam(model.parameters(), lr=LR)
    opt_single = optim.Adam(single.parameters(), lr=LR)
    rng = np.random.default_rng(7)                   # the same batches on every rank
    for step in range(3):
        batch = random_batch(B, rng)
        T = batch.num_tokens
        opt_single.zero_grad()
        token_loss(single, batch, slice(None), "mean").backward()
        opt.zero_grad()
        (token_loss(model, batch, dist.batch_slice(B), "sum") * (N / T)).backward()
        dist.all_reduce_gradients(model.parameters())
        for (name, p), q in zip(model.named_parameters(), single.parameters()):
            error = relative_error(p.grad, q.grad)
            assert error <= 1e-12, f"step {step}: gradient of {name}: relative error {error:.2e}"
            tiny = 1e-12 * np.abs(q.grad).max()
            for g in (q.grad, p.grad):               # rounding noise in either run (the other may be 0)
                zero_grad[name] |= (g != 0) & (np.abs(g) <= tiny)
        opt_single.step()
        opt.step()
        for (name, p), q in zip(model.named_parameters(), single.parameters()):
            learns = ~zero_grad[name]
            error = relative_error(p.data[learns], q.data[learns])
            assert error <= 1e-12, f"step {step}: {name} after Adam: relative error {error:.2e}"
            for run in (p, q):
                moved = np.abs(run.data[~learns] - start[name][~learns]).max(initial=0.0)
                assert moved <= 1e-6 * LR * (step + 1), f"step {step}: {name}'s zero-gradient part moved {moved:.2e}"
