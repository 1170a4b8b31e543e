"""Decoding speed: greedy and beam search tokens per second for each model kind.

    python benchmarks/decoding.py [--backend numpy|cupy] [--batch 32] [--length 20]

Randomly initialized models of the default sizes decode a batch of random sources
for exactly ``--length`` steps (the output bias of the end-of-sequence token is set
to -1e9, so that no hypothesis stops early): the work is the same for every kind.
Tokens per second = batch * length / seconds (for beam search, output tokens,
not the beam_size times more hypotheses searched). Best of ``--repeat`` runs.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minigrad as mg                                                     # noqa: E402
from models.decoding import beam_search, greedy_decode                    # noqa: E402
from models.seq2seq import RNNSeq2Seq                                     # noqa: E402
from models.transformer import TransformerSeq2Seq                         # noqa: E402

V = 1000
KINDS = {
    "gru (no attention)": lambda: RNNSeq2Seq(V, V, 64, 128, cell="gru", attention="none"),
    "gru + bahdanau": lambda: RNNSeq2Seq(V, V, 64, 128, cell="gru", attention="bahdanau"),
    "lstm + luong-general": lambda: RNNSeq2Seq(V, V, 64, 128, cell="lstm", attention="luong-general"),
    "bi-gru + bahdanau": lambda: RNNSeq2Seq(V, V, 64, 128, cell="gru", attention="bahdanau", bidirectional=True),
    "transformer (2+2, d 128)": lambda: TransformerSeq2Seq(V, V, d_model=128, nhead=4, dim_feedforward=512),
}


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mg.set_backend(args.backend)
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    B, L = args.batch, args.length
    src = mg.Tensor(mg.backend.current_backend().from_numpy(rng.integers(3, V, (B, L))))
    lengths = [L] * B
    eos = 2
    print(f"backend {args.backend}, batch {B}, {L} steps, beam {args.beam_size}, best of {args.repeat}")
    print("| model | parameters | greedy tokens/s | beam tokens/s |")
    print("|---|---:|---:|---:|")
    for name, make in KINDS.items():
        model = make().eval()
        model.generator.bias.data[eos] = -1e9                  # never chosen: every run is L steps
        greedy = best_time(lambda: greedy_decode(model, src, lengths, 1, eos, max_len=L), args.repeat)
        beam = best_time(lambda: beam_search(model, src, lengths, 1, eos, beam_size=args.beam_size,
                                             max_len=L), args.repeat)
        print(f"| {name} | {model.num_parameters():,} | {B * L / greedy:,.0f} | {B * L / beam:,.0f} |")


if __name__ == "__main__":
    main()
