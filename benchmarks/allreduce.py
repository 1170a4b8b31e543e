"""The time of one gradient all-reduce (``minigrad.distributed.all_reduce_gradients``).

    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/allreduce.py
    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/allreduce.py --sizes 1e6 1e7 --repeats 20

For each model size P (float32 parameters, cut into ``--arrays`` arrays of equal size
as a model's weight matrices are), every rank holds a random gradient of each array,
and the script times, after a barrier:

    all_reduce_gradients   the whole call: the has-gradient flags, packing into one
                           flat buffer, the Allreduce, the division by N, unpacking
    Allreduce alone        MPI's in-place sum on an already packed buffer of P floats

The allocator is set as train.py sets it (``reuse_freed_memory``). Each figure is the median over ``--repeats`` calls of the slowest rank's time (a
collective ends when its last rank does). The bandwidth column is the "bus
bandwidth" of a ring all-reduce, 2 (N-1)/N * 4P bytes sent per rank over the time,
the figure that predicts other N on the same links. Only rank 0 prints.

Measured (2-core AMD EPYC VM shared with other jobs, load 4-8; MPICH 5.0.2 wheel,
shared memory; three runs):

    parameters   all_reduce_gradients   Allreduce alone   bus bandwidth
    1,000,000    5.0-8.5 ms             3.1-4.2 ms        ~1.0-1.3 GB/s
    10,000,000   62-81 ms               39-48 ms          ~0.8-1.0 GB/s

The rest of the call is packing, dividing and unpacking (~7 ms at 10M) and, above
glibc's 32 MiB mmap threshold, page faults of a fresh buffer each call (~13 ms at 10M:
a flat buffer kept between calls would save them, at the price of one more copy of
the gradients held for good).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # this checkout's minigrad

from minigrad import distributed as dist
from minigrad.allocator import reuse_freed_memory
from minigrad.nn import Parameter


def timed(fn, repeats):
    """Median over ``repeats`` of the slowest rank's time of fn(), in seconds."""
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(max(dist.all_gather_object(elapsed)))
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7], help="parameters per model")
    parser.add_argument("--arrays", type=int, default=40, help="arrays the parameters are cut into")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure (median)")
    args = parser.parse_args()

    dist.init()
    reuse_freed_memory()              # as train.py: the flat buffer reuses last call's memory
    N = dist.get_world_size()
    world = dist._world()
    if dist.is_main():
        print(f"{N} ranks, float32, {args.arrays} arrays per model, median of {args.repeats} calls")
        print(f"{'parameters':>12} {'MB':>7} {'all_reduce_gradients':>21} {'Allreduce alone':>16} {'bus GB/s':>9}")
    rng = np.random.default_rng(dist.get_rank())
    for size in args.sizes:
        P = int(size)
        params = [Parameter(np.zeros(P // args.arrays, np.float32)) for _ in range(args.arrays)]
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        flat = dist.flatten_arrays([p.grad for p in params])
        dist.all_reduce_gradients(params)                                     # warm-up
        whole = timed(lambda: dist.all_reduce_gradients(params), args.repeats)
        alone = timed(lambda: world.comm.Allreduce(world.MPI.IN_PLACE, flat, op=world.MPI.SUM), args.repeats)
        megabytes = flat.nbytes / 1e6
        bus = 2 * (N - 1) / N * flat.nbytes / alone / 1e9
        if dist.is_main():
            print(f"{flat.size:>12,} {megabytes:>7.1f} {whole * 1e3:>18.2f} ms {alone * 1e3:>13.2f} ms {bus:>9.2f}")


if __name__ == "__main__":
    main()
