"""Data parallelism over MPI: N processes ("ranks") train one model as one.

Every rank holds the whole model. One training step is (Li et al., 2020, "PyTorch
Distributed", arXiv:2006.15704; Sergeev & Del Balso, 2018, Horovod, arXiv:1802.05799):

    0. broadcast   rank 0's parameters to every rank, once at the start (and after a
                   resume), so every rank starts identical whatever its seed
    1. split       the global batch of B rows: rank r takes rows r B/N .. (r+1) B/N
    2. backward    each rank: forward and backward on its rows only, giving g_r
    3. all-reduce  g = (1/N) sum_r g_r, the same array on every rank
    4. step        each rank: the same optimizer step on the same g, so the parameters
                   stay identical without ever being sent again

The processes are started by MPI (``mpiexec -n N python train.py``), through
``mpi4py``, as ChainerMN did for Chainer; a plain ``python train.py`` is one rank of a
world of size 1 and needs no MPI installed: every function here then returns at once.

    from minigrad import distributed as dist

    dist.init()                                   # rank and world size from mpiexec
    dist.broadcast_parameters(model)              # 0. every rank starts as rank 0
    rows = dist.batch_slice(B)                    # 1. this rank's rows of the batch
    loss = F.cross_entropy(logits, target, ignore_index=PAD, reduction="sum") \\
        * (dist.get_world_size() / global_tokens) # see "The loss" below
    loss.backward()                               # 2.
    dist.all_reduce_gradients(model.parameters()) # 3.
    optimizer.step()                              # 4.

The loss. ``all_reduce_gradients`` averages, as PyTorch's DistributedDataParallel does,
so the rank losses must average to the one-process loss. The one-process loss is the
mean over the T target tokens of the whole batch, (1/T) sum_i l_i. Rank r holds the
tokens i in R_r, and

    (1/N) sum_r [ N/T sum_{i in R_r} l_i ]  =  (1/T) sum_i l_i

for any split of the rows, so each rank's loss is its *sum* times N / T, with T the
global token count (every rank builds the same global batch, so every rank knows T;
a rank that draws its own shard gets it from ``all_reduce_sum``). The mean of the
per-rank means, (1/N) sum_r (1/T_r) sum_{i in R_r} l_i, is the same only when every
rank holds exactly T/N tokens, which padded sentences of different lengths never
promise: it weights the tokens of a rank with fewer of them more.

Failure. A rank whose exception escapes would leave the others waiting forever in the
next collective; ``init()`` installs an excepthook that prints the error on that rank
and calls ``MPI.COMM_WORLD.Abort(1)``, which stops every rank of the job.

Metrics computed on shards combine exactly with ``all_reduce_sum`` (sums and counts,
never means of means); ``all_gather_object`` brings hypotheses or samples to every rank.
"""
import os
import sys

import numpy

from minigrad import backend as _backend
from minigrad.nn.module import Module

__all__ = [
    "init", "get_rank", "get_world_size", "get_local_rank", "is_main", "barrier",
    "broadcast_parameters", "broadcast_object", "all_gather_object",
    "all_reduce_gradients", "all_reduce_sum", "flatten_arrays", "unflatten_into",
    "DistributedSampler", "batch_slice", "rank_seed", "use_local_gpu",
]

# Environment variables by which MPI launchers announce the job's size: MPICH's and
# Intel MPI's hydra (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE).
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class _World:
    """The processes of this job: this one's rank, their number, the communicator.

    ``comm`` is ``MPI.COMM_WORLD`` (None in a world of size 1 without mpi4py);
    ``local_rank`` is the rank among the processes on this machine (for the GPU)."""

    def __init__(self, comm=None, MPI=None):
        self.comm, self.MPI = comm, MPI
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        if comm is not None:
            local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
            self.local_rank = local.Get_rank()
            local.Free()
        else:
            self.local_rank = 0
        self.nccl = None           # NCCL's communicator, made on first use; False: no NCCL


_WORLD = None                      # the _World, made by init()


def _launcher_size():
    """The number of processes an MPI launcher says it started (1 if none did)."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 1


def _connect():
    """Join the MPI job this process belongs to (a world of size 1 without one)."""
    launched = _launcher_size()
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as error:   # RuntimeError: mpi4py finds no MPI library
        if launched > 1:
            raise RuntimeError(
                f"this process is one of {launched} started by an MPI launcher, but mpi4py "
                f"cannot be used ({error}); install it with pip install -e \".[mpi]\""
            ) from None
        return _World()
    world = _World(MPI.COMM_WORLD, MPI)
    if world.size != launched and launched > 1:
        raise RuntimeError(
            f"the MPI launcher started {launched} processes but MPI.COMM_WORLD has "
            f"{world.size}: mpiexec and mpi4py's MPI library are of two different MPIs; "
            f"use the mpiexec installed beside this Python ({os.path.dirname(sys.executable)})"
        )
    return world


def _abort_on_uncaught_exception(previous_hook):
    """An excepthook: print the error as usual, then stop every rank of the job."""
    def hook(exc_type, exc, tb):
        sys.stderr.write(f"minigrad.distributed: rank {_WORLD.rank} of {_WORLD.size} failed; "
                         f"stopping all {_WORLD.size} ranks (MPI Abort)\n")
        previous_hook(exc_type, exc, tb)
        sys.stdout.flush()
        sys.stderr.flush()
        _WORLD.comm.Abort(1)
    return hook


def init():
    """Join the MPI job (idempotent): rank and world size from ``mpiexec``.

    Without mpi4py, or in a process that no launcher started, this is a world of
    size 1 and every collective below returns at once. With more than one rank, an
    exception that escapes to the top of any rank stops the whole job
    (``MPI.COMM_WORLD.Abort(1)``) after the usual traceback on that rank, instead of
    leaving the other ranks waiting forever in their next collective.

    The functions below call ``init()`` themselves; calling it first makes the start
    explicit. Raises RuntimeError under an MPI launcher without a usable mpi4py, or
    when ``mpiexec`` belongs to another MPI than mpi4py's library (each process would
    otherwise train alone as rank 0 and they would overwrite each other's files).
    """
    global _WORLD
    if _WORLD is not None:
        return
    _WORLD = _connect()
    if _WORLD.size > 1:
        sys.excepthook = _abort_on_uncaught_exception(sys.excepthook)


def _world():
    init()
    return _WORLD


def get_rank():
    """This process's rank, 0 .. world size - 1."""
    return _world().rank


def get_world_size():
    """The number of processes N of the job (1 without MPI)."""
    return _world().size


def get_local_rank():
    """This process's rank among the processes on its machine (which GPU to use)."""
    return _world().local_rank


def is_main():
    """Whether this is rank 0: the one that prints progress and writes files."""
    return get_rank() == 0


def barrier():
    """Wait until every rank has called ``barrier()``."""
    world = _world()
    if world.size > 1:
        world.comm.Barrier()


def broadcast_object(obj, src=0):
    """Rank ``src``'s ``obj`` on every rank (pickled: small host state, e.g. a step
    number, a config, a resumed trainer state). Every rank must call it."""
    world = _world()
    if world.size == 1:
        return obj
    return world.comm.bcast(obj, root=src)


def all_gather_object(obj):
    """A list of every rank's ``obj``, in rank order, on every rank (pickled).

    PyTorch's ``all_gather_object(object_list, obj)`` fills a list it is given; this
    one returns the list."""
    world = _world()
    if world.size == 1:
        return [obj]
    return world.comm.allgather(obj)


# --------------------------------------------------------------------------- #
# Parameters and gradients: flat buffers
# --------------------------------------------------------------------------- #

def flatten_arrays(arrays):
    """One new 1-d array holding ``arrays`` (one dtype, one backend) one after the other."""
    dtypes = sorted({str(a.dtype) for a in arrays})
    if len(dtypes) != 1:
        raise TypeError(f"flatten_arrays: expected arrays of one dtype, got {dtypes}")
    xp = _backend.backend_of(arrays[0]).xp
    return xp.concatenate([a.reshape(-1) for a in arrays])                 # (sum of sizes,)


def unflatten_into(flat, arrays):
    """Copy consecutive pieces of the 1-d ``flat`` back into ``arrays``, in place."""
    total = sum(a.size for a in arrays)
    if flat.shape != (total,):
        raise ValueError(f"unflatten_into: expected a flat array of shape ({total},) for "
                         f"arrays of {total} elements, got shape {flat.shape}")
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


def _by_backend_and_dtype(arrays):
    """The arrays grouped by (backend, dtype), each group in the order given."""
    groups = {}
    for a in arrays:
        groups.setdefault((_backend.backend_of(a).name, str(a.dtype)), []).append(a)
    return list(groups.values())


def _parameters(parameters):
    if isinstance(parameters, Module):
        return list(parameters.parameters())
    return list(parameters)


def broadcast_parameters(parameters, src=0):
    """Copy rank ``src``'s values into every parameter on every rank, in place.

    ``parameters``: a Module or its ``parameters()``, the same model on every rank.
    Call it once after building the model (every rank then starts as rank ``src``,
    whatever its seed) and after a resume. Buffers are not sent: minigrad's (the
    positional-encoding tables) are made by the constructors, the same everywhere.
    One flat buffer per dtype, one broadcast each.
    """
    world = _world()
    if world.size == 1:
        return
    arrays = [p.data for p in _parameters(parameters)]
    for group in _by_backend_and_dtype(arrays):
        flat = flatten_arrays(group)
        _communicate_(flat, "broadcast", src)
        unflatten_into(flat, group)


def all_reduce_gradients(parameters):
    """Average every gradient over the ranks, in place: g = (1/N) sum_r g_r.

    ``parameters``: a Module or its ``parameters()``, in the same order on every rank.

    The bucket. All gradients of one dtype are packed into one flat buffer, summed
    across the ranks by one in-place ``Allreduce``, divided by N and copied back.
    One call for the whole model, not one per parameter: each call costs a fixed
    latency (a few microseconds between processes of one machine, tens across a
    network) that a model of a hundred small arrays would pay a hundred times.
    PyTorch's DDP cuts the gradients into 25 MB buckets instead, so that it can send
    a bucket while backward is still computing the next one; here backward is
    finished before anything is sent, so there is nothing to overlap, and one buffer
    is the simplest. The MPI library itself cuts a large message into pipelined
    chunks (a ring or recursive-halving all-reduce), so a single large call already
    keeps the links busy.

    Parameters without a gradient. The ranks first agree (a small all-reduce of one
    flag per parameter) on which parameters got a gradient on any rank. One that
    did somewhere but not here (it took no part in this rank's rows) counts as
    zeros here, which is its true gradient; one that got none on any rank keeps
    ``grad = None`` on every rank, so the optimizer skips it as one process would.
    (PyTorch's DDP instead stops with an error when a parameter gets no gradient,
    unless told ``find_unused_parameters=True``.) Every rank must call this with the
    same parameters in the same order, or MPI raises and the job aborts.
    """
    world = _world()
    if world.size == 1:
        return                                   # the average over one rank
    params = [p for p in _parameters(parameters) if p.requires_grad]
    has_grad = numpy.array([p.grad is not None for p in params], dtype=numpy.int32)
    world.comm.Allreduce(world.MPI.IN_PLACE, has_grad, op=world.MPI.SUM)
    grads = []
    for p, count in zip(params, has_grad):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = _backend.backend_of(p.data).xp.zeros_like(p.data)
        grads.append(p.grad)
    for group in _by_backend_and_dtype(grads):
        flat = flatten_arrays(group)
        _communicate_(flat, "sum")
        flat /= world.size
        unflatten_into(flat, group)


def all_reduce_sum(values):
    """The sum over the ranks of host numbers: a number or a sequence/array of them.

    For metrics computed on shards: each rank sums its losses, counts its tokens and
    its correct ones; the sums and counts add up exactly to those of the whole set,
    and the mean is formed after (never a mean of per-rank means). Returns a Python
    number for a number, else a NumPy array (bools count as int64). Sum float64
    values for float metrics. Every rank must call it with the same shape.
    """
    host = numpy.array(_backend.to_numpy(values) if _backend.is_array(values) else values)
    if host.dtype.kind not in "biuf":
        raise TypeError(f"all_reduce_sum: expected numbers, got an array of dtype {host.dtype}")
    if host.dtype.kind == "b":
        host = host.astype(numpy.int64)
    world = _world()
    if world.size > 1:
        world.comm.Allreduce(world.MPI.IN_PLACE, host, op=world.MPI.SUM)
    return host.item() if host.ndim == 0 else host


# --------------------------------------------------------------------------- #
# The one place that knows where arrays live: NumPy, CuPy, staged through the host
# --------------------------------------------------------------------------- #

_NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


def _communicate_(buffer, kind, src=0):
    """Sum (``kind`` "sum") or broadcast from rank ``src`` (``kind`` "broadcast") the
    1-d ``buffer`` across the ranks, in place.

      NumPy        MPI reads and writes the array's memory directly.
      CuPy + NCCL  NCCL on the current CUDA stream, GPU to GPU: ordered after the
                   kernels that wrote ``buffer`` and before those that read it next.
      otherwise    (CuPy without NCCL, the test suite's strict backend) staged through
                   host memory: wait for the stream, copy to the host, MPI, copy back.

    The CuPy branches are UNTESTED ON A DEVICE (no GPU where this was written and in
    CI); the staging branch runs in the MPI tests on the strict backend.
    """
    world = _world()
    backend = _backend.backend_of(buffer)
    if backend.name == "numpy":
        _mpi_(world, buffer, kind, src)
        return
    if backend.name == "cupy" and str(buffer.dtype) in _NCCL_DTYPES:
        nccl = _nccl_communicator(world, backend.xp)
        if nccl is not None:
            module = backend.xp.cuda.nccl
            dtype = getattr(module, _NCCL_DTYPES[str(buffer.dtype)])
            stream = backend.xp.cuda.get_current_stream().ptr
            pointer = buffer.data.ptr
            if kind == "sum":
                nccl.allReduce(pointer, pointer, buffer.size, dtype, module.NCCL_SUM, stream)
            else:
                nccl.bcast(pointer, buffer.size, dtype, src, stream)
            return
    if backend.name == "cupy":
        backend.xp.cuda.get_current_stream().synchronize()   # buffer's kernels are done
    host = backend.to_numpy(buffer)                           # a host copy
    _mpi_(world, host, kind, src)
    buffer[...] = backend.from_numpy(host)


def _mpi_(world, host, kind, src):
    """The MPI call on a host array, in place (the buffer API: no pickling)."""
    if kind == "sum":
        world.comm.Allreduce(world.MPI.IN_PLACE, host, op=world.MPI.SUM)
    else:
        world.comm.Bcast(host, root=src)


def _nccl_communicator(world, cupy):
    """NCCL's communicator of all ranks, made on first use (None without NCCL).

    Rank 0 draws NCCL's unique id and MPI sends it to every rank. Each rank must use
    its own GPU (``use_local_gpu()``): NCCL refuses two ranks on one device."""
    if world.nccl is None:
        if not cupy.cuda.nccl.available:
            world.nccl = False
        else:
            uid = cupy.cuda.nccl.get_unique_id() if world.rank == 0 else None
            uid = world.comm.bcast(uid, root=0)
            world.nccl = cupy.cuda.nccl.NcclCommunicator(world.size, uid, world.rank)
    return world.nccl if world.nccl else None


def use_local_gpu():
    """Make GPU ``get_local_rank()`` (modulo the GPUs visible) this process's device,
    so that the ranks on one machine use one GPU each. Call it before making any
    CuPy array. UNTESTED ON A DEVICE."""
    cupy = _backend.backend_by_name("cupy").xp
    cupy.cuda.Device(get_local_rank() % cupy.cuda.runtime.getDeviceCount()).use()


# --------------------------------------------------------------------------- #
# Which data each rank reads, and its random numbers
# --------------------------------------------------------------------------- #

def _rank_and_size(rank, world_size):
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"expected 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return rank, world_size


def batch_slice(n, rank=None, world_size=None):
    """This rank's rows of a global batch (or evaluation set) of ``n`` rows.

    Rank r takes rows floor(r n / N) .. floor((r + 1) n / N): contiguous, disjoint,
    covering all n rows. When N does not divide n the parts differ by one row (the
    later ranks get the extra rows); with n < N some ranks get no row, and must
    still call ``all_reduce_gradients`` (they contribute zeros). With the loss of
    the module docstring (sum times N / T) the averaged gradient is the one-process
    gradient for any of these splits. ``rank`` and ``world_size`` default to this
    process's."""
    rank, world_size = _rank_and_size(rank, world_size)
    return slice(rank * n // world_size, (rank + 1) * n // world_size)


class DistributedSampler:
    """The indices of this rank's shard of a data set, as PyTorch's ``DistributedSampler``.

    ``dataset``: anything with a length (or the number of examples n). Every rank shuffles 0 .. n-1 with the same seed, ``seed + epoch``, so all ranks
    hold the same order; rank r then takes every N-th index from position r. The
    shards are disjoint, of equal size, and together cover the data:

      drop_last=False (default)  the order is padded to a multiple of N by repeating
                                 its first indices (so a few examples appear twice
                                 in an epoch): ceil(n / N) indices per rank;
      drop_last=True             its last n mod N indices are dropped: floor(n / N).

    Equal sizes matter because every rank must take the same number of steps (each
    step has a collective). Call ``set_epoch(epoch)`` at the start of each epoch for
    a new order. For an evaluation, where every example must count exactly once,
    use ``batch_slice(n)`` instead (parts may differ by one).

        sampler = DistributedSampler(pairs, seed=args.seed)
        sampler.set_epoch(epoch)
        shard = [pairs[i] for i in sampler]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        self.rank, self.num_replicas = _rank_and_size(rank, num_replicas)
        n = dataset if isinstance(dataset, int) else len(dataset)
        if n < 0:
            raise ValueError(f"DistributedSampler: expected a data set or a number of examples >= 0, got {n}")
        self.n, self.shuffle, self.seed, self.drop_last = n, shuffle, seed, drop_last
        self.epoch = 0
        N = self.num_replicas
        self.num_samples = n // N if drop_last else -(-n // N)        # per rank
        self.total_size = self.num_samples * N

    def set_epoch(self, epoch):
        """Use the order of epoch ``epoch`` (seed + epoch) from now on."""
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            order = numpy.random.default_rng(self.seed + self.epoch).permutation(self.n)   # (n,)
        else:
            order = numpy.arange(self.n)                                                   # (n,)
        if self.total_size > self.n:                                  # pad: repeat from the start
            repeats = -(-self.total_size // self.n)
            order = numpy.tile(order, repeats)                                             # (repeats n,)
        order = order[:self.total_size]                                                    # (N num_samples,)
        return iter(order[self.rank::self.num_replicas].tolist())                          # (num_samples,)

    def __len__(self):
        return self.num_samples


def rank_seed(seed, step, rank=None):
    """A seed for this rank's random draws at training step ``step`` (dropout).

    Ranks must draw different dropout masks (else N ranks would drop the same units
    of their different rows) that a run can reproduce, and resume, from three
    numbers alone: ``mg.manual_seed(rank_seed(seed, step, rank))`` before each step.
    NumPy's SeedSequence mixes the three into a 64-bit seed, so nearby triples give
    unrelated streams (seed + rank would give rank 1 of one run the stream of rank
    0 of the run with the next seed)."""
    rank = get_rank() if rank is None else rank
    state = numpy.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=numpy.uint64)
    return int(state[0])
