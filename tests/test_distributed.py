"""minigrad.distributed in one process: a world of size 1, the rules that say which
data each rank reads (simulated ranks), per-rank seeds, and the flat buffers.

The collectives on real ranks are tested under mpiexec in tests/mpi/."""
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import distributed as dist
from minigrad.backend import backend_by_name, to_numpy
from minigrad.nn import Linear

from helpers import BACKENDS, tensor

pytestmark = pytest.mark.skipif(dist.get_world_size() > 1, reason="one-process tests (world size 1)")

DTYPES = [np.float16, np.float32, np.float64]


# -- a world of size 1 ---------------------------------------------------------

def test_one_process_is_rank_0_of_1():
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    assert dist.is_main()
    dist.barrier()
    assert dist.broadcast_object({"step": 3}) == {"step": 3}
    assert dist.all_gather_object("x") == ["x"]
    assert "_abort_on_uncaught_exception" not in getattr(sys.excepthook, "__qualname__", "")  # abort only with ranks to stop


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_process_all_reduce_is_the_identity_and_broadcast_a_no_op(backend):
    mg.manual_seed(0)
    with mg.use_backend(backend):
        model = Linear(3, 2)
    model.weight.grad = backend_by_name(backend).from_numpy(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    weight, grad = model.weight.numpy(), to_numpy(model.weight.grad)
    dist.broadcast_parameters(model)
    dist.all_reduce_gradients(model.parameters())
    np.testing.assert_array_equal(model.weight.numpy(), weight)
    np.testing.assert_array_equal(to_numpy(model.weight.grad), grad)
    assert model.bias.grad is None


def test_one_process_all_reduce_sum_returns_its_input():
    assert dist.all_reduce_sum(7) == 7 and isinstance(dist.all_reduce_sum(7), int)
    assert dist.all_reduce_sum(2.5) == 2.5 and isinstance(dist.all_reduce_sum(2.5), float)
    np.testing.assert_array_equal(dist.all_reduce_sum([1.5, 2.0]), [1.5, 2.0])
    np.testing.assert_array_equal(dist.all_reduce_sum(np.array([True, False])), [1, 0])
    np.testing.assert_array_equal(dist.all_reduce_sum(tensor([1.0, 2.0], "strict").data), [1.0, 2.0])
    with pytest.raises(TypeError, match="expected numbers"):
        dist.all_reduce_sum(["a", "b"])


def test_without_mpi4py_a_plain_process_is_a_world_of_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)             # import mpi4py fails
    for name in dist._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    world = dist._connect()
    assert (world.rank, world.size, world.comm) == (0, 1, None)


def test_without_mpi4py_under_mpiexec_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"one of 2 .*pip install -e \"\.\[mpi\]\""):
        dist._connect()


def test_a_launcher_of_another_mpi_is_an_error(monkeypatch):
    pytest.importorskip("mpi4py")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")             # Open MPI's mpiexec, MPICH's library
    monkeypatch.delenv("PMI_SIZE", raising=False)
    with pytest.raises(RuntimeError, match="two different MPIs"):
        dist._connect()


# -- flat buffers ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(st.lists(st.tuples(st.sampled_from(DTYPES),
                          st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)),
                min_size=1, max_size=6), st.booleans())
def test_flatten_and_unflatten_round_trip_exactly(backend, specs, transposed):
    """Per dtype, as all_reduce_gradients groups them: flatten, then back into fresh
    arrays (transposed views: not contiguous) gives every value back bit for bit."""
    rng = np.random.default_rng(0)
    host = [np.asarray(rng.standard_normal(shape) * 1e3, dtype=dtype) for dtype, shape in specs]
    on = backend_by_name(backend)
    arrays = [on.from_numpy(a) for a in host]
    for dtype in DTYPES:
        group = [a for a in arrays if a.dtype == dtype]
        if not group:
            continue
        flat = dist.flatten_arrays(group)
        assert flat.shape == (sum(a.size for a in group),) and flat.dtype == dtype
        targets = [on.from_numpy(np.zeros(a.shape[::-1], dtype)).T if transposed else on.xp.zeros_like(a)
                   for a in group]
        dist.unflatten_into(flat, targets)
        for target, a in zip(targets, group):
            np.testing.assert_array_equal(to_numpy(target), to_numpy(a))
            assert to_numpy(target).dtype == dtype


def test_flatten_refuses_mixed_dtypes_and_unflatten_a_wrong_size():
    with pytest.raises(TypeError, match=r"one dtype, got \['float32', 'float64'\]"):
        dist.flatten_arrays([np.zeros(2, np.float32), np.zeros(2, np.float64)])
    with pytest.raises(ValueError, match=r"shape \(5,\) .* got shape \(4,\)"):
        dist.unflatten_into(np.zeros(4), [np.zeros(2), np.zeros(3)])


# -- which rows and examples each rank takes -------------------------------------

def shards(n, N, **kwargs):
    """The shard of every simulated rank, each from its own sampler."""
    epoch = kwargs.pop("epoch", 0)
    result = []
    for rank in range(N):
        sampler = dist.DistributedSampler(range(n), num_replicas=N, rank=rank, **kwargs)
        sampler.set_epoch(epoch)
        result.append(list(sampler))
        assert len(result[-1]) == len(sampler)
    return result


@given(st.integers(0, 60), st.integers(1, 7), st.integers(0, 2**31), st.integers(0, 5))
def test_padded_shards_are_equal_disjoint_and_cover(n, N, seed, epoch):
    parts = shards(n, N, seed=seed, epoch=epoch)
    size = -(-n // N)
    assert all(len(p) == size for p in parts)
    order = [parts[i % N][i // N] for i in range(N * size)]        # interleaved back: the global order
    assert sorted(order[:n]) == list(range(n)), "the ranks did not shuffle with one seed"
    assert order[n:] == order[:N * size - n]                        # padding repeats the start
    if n % N == 0:
        assert len(set(order)) == n                                 # no padding: disjoint


@given(st.integers(0, 60), st.integers(1, 7), st.integers(0, 2**31))
def test_dropping_the_remainder_gives_equal_disjoint_shards(n, N, seed):
    parts = shards(n, N, seed=seed, drop_last=True)
    flat = [i for p in parts for i in p]
    assert all(len(p) == n // N for p in parts)
    assert len(set(flat)) == len(flat) == n - n % N


def test_each_epoch_a_new_order_and_the_same_order_for_the_same_seed():
    orders = [shards(40, 3, seed=1, epoch=e) for e in range(4)]
    assert all(orders[e] != orders[e + 1] for e in range(3))
    assert shards(40, 3, seed=1, epoch=2) == orders[2]
    assert shards(40, 3, seed=2, epoch=2) != orders[2]
    assert shards(10, 2, shuffle=False) == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


@given(st.integers(0, 100), st.integers(1, 9))
def test_batch_slices_split_the_rows_in_order(B, N):
    slices = [dist.batch_slice(B, rank, N) for rank in range(N)]
    rows = [i for s in slices for i in range(B)[s]]
    assert rows == list(range(B))                                  # disjoint, in order, all rows
    sizes = [len(range(B)[s]) for s in slices]
    assert set(sizes) <= {B // N, -(-B // N)}


def test_batch_slice_examples_and_errors():
    assert [dist.batch_slice(5, r, 2) for r in range(2)] == [slice(0, 2), slice(2, 5)]
    assert dist.batch_slice(8) == slice(0, 8)                     # this process: all rows
    with pytest.raises(ValueError, match="rank 2, world_size 2"):
        dist.batch_slice(8, 2, 2)
    with pytest.raises(ValueError, match="rank 0, world_size 0"):
        dist.DistributedSampler(8, num_replicas=0, rank=0)


# -- per-rank random streams -------------------------------------------------------

def test_rank_seeds_are_reproducible_and_distinct():
    seeds = {(s, step, r): dist.rank_seed(s, step, r) for s in range(3) for step in range(50) for r in range(8)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= v < 2**64 for v in seeds.values())
    assert dist.rank_seed(1, 7, 3) == seeds[(1, 7, 3)]
    assert dist.rank_seed(1, 7) == seeds[(1, 7, 0)]                # this process is rank 0


def test_rank_seeds_give_each_rank_its_own_reproducible_dropout():
    def mask(rank, step):
        mg.manual_seed(dist.rank_seed(0, step, rank))
        return mg.dropout(mg.ones(64), p=0.5, training=True).numpy() != 0
    assert not np.array_equal(mask(0, 3), mask(1, 3))
    assert not np.array_equal(mask(0, 3), mask(0, 4))
    np.testing.assert_array_equal(mask(1, 3), mask(1, 3))
