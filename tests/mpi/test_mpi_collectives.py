"""The collectives of minigrad.distributed on real ranks: broadcast, the gradient
all-reduce (mixed dtypes, missing gradients, host-staged arrays), metric sums,
object gathering, shards and per-rank seeds.

The ``strict`` backend's arrays refuse the buffer protocol as CuPy's device arrays do,
so on it every collective takes the path a CuPy array without NCCL takes: staged
through host memory."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import distributed as dist
from minigrad.backend import backend_by_name, to_numpy
from minigrad.nn import Parameter
from models.transformer import TransformerSeq2Seq

from helpers import tensor

HOST_BACKENDS = ["numpy", "strict"]
pytestmark = pytest.mark.mpi


def small_transformer():
    return TransformerSeq2Seq(9, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                              dim_feedforward=16, dropout=0.0)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_broadcast_makes_differently_seeded_ranks_identical(backend):
    mg.manual_seed(100 + dist.get_rank())
    with mg.use_backend(backend):
        model = small_transformer()
    before = {name: p.numpy() for name, p in model.named_parameters()}
    arrays = [p.data for p in model.parameters()]
    everyone = dist.all_gather_object(before)
    assert any(not np.array_equal(everyone[0][name], everyone[r][name])
               for r in range(1, len(everyone)) for name in before), "the ranks started identical"
    dist.broadcast_parameters(model)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.numpy(), everyone[0][name], err_msg=name)
    assert all(p.data is a for p, a in zip(model.parameters(), arrays)), "not in place"


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_all_reduce_gradients_averages_every_dtype(backend):
    rank, N = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(rank)
    shapes = [((3, 4), np.float32), ((5,), np.float64), ((), np.float32), ((2, 0), np.float64),
              ((2, 3, 2), np.float64)]
    params = [Parameter(tensor(np.zeros(shape, dtype), backend)) for shape, dtype in shapes]
    for p, (shape, dtype) in zip(params, shapes):
        p.grad = backend_by_name(backend).from_numpy(rng.standard_normal(shape).astype(dtype))
    grads = dist.all_gather_object([to_numpy(p.grad) for p in params])
    dist.all_reduce_gradients(params)
    for i, p in enumerate(params):
        expected = sum(g[i] for g in grads) / N
        assert p.grad.dtype == shapes[i][1]
        np.testing.assert_allclose(to_numpy(p.grad), expected, rtol=1e-6 if p.grad.dtype == np.float32 else 1e-15)


def test_all_reduce_gradients_missing_gradients():
    """A gradient present on some rank counts as zeros where it is missing; one that no
    rank has stays None everywhere; one that does not require grad is left alone."""
    rank, N = dist.get_rank(), dist.get_world_size()
    only_rank0, nowhere, everywhere = (Parameter(mg.Tensor(np.zeros(3))) for _ in range(3))
    frozen = Parameter(mg.Tensor(np.zeros(2)), requires_grad=False)
    frozen.grad = np.full(2, float(rank))
    if rank == 0:
        only_rank0.grad = np.full(3, 6.0)
    everywhere.grad = np.full(3, float(rank + 1))
    dist.all_reduce_gradients([only_rank0, nowhere, frozen, everywhere])
    np.testing.assert_array_equal(only_rank0.grad, np.full(3, 6.0 / N))
    assert nowhere.grad is None
    np.testing.assert_array_equal(frozen.grad, np.full(2, float(rank)))
    np.testing.assert_array_equal(everywhere.grad, np.full(3, (N + 1) / 2))


def test_all_reduce_sum_combines_shards_exactly():
    """A mean over shards of unequal size, from sums and counts: the mean of the whole set."""
    rank, N = dist.get_rank(), dist.get_world_size()
    values = np.random.default_rng(0).standard_normal(11)
    shard = values[dist.batch_slice(len(values))]
    total, count = dist.all_reduce_sum([shard.sum(), len(shard)])
    assert count == len(values)
    np.testing.assert_allclose(total / count, values.mean(), rtol=1e-14)
    assert dist.all_reduce_sum(rank + 1) == N * (N + 1) // 2
    assert isinstance(dist.all_reduce_sum(rank + 1), int)
    assert dist.all_reduce_sum(0.5) == 0.5 * N
    np.testing.assert_array_equal(dist.all_reduce_sum(np.array([True, rank == 0])), [N, 1])


def test_objects_broadcast_and_gather():
    rank, N = dist.get_rank(), dist.get_world_size()
    assert dist.broadcast_object({"step": 10 * rank}) == {"step": 0}
    assert dist.broadcast_object(rank, src=N - 1) == N - 1
    assert dist.all_gather_object(("rank", rank)) == [("rank", r) for r in range(N)]


def test_sampler_shards_of_the_real_ranks_are_disjoint_and_cover():
    for drop_last in (False, True):
        sampler = dist.DistributedSampler(23, seed=5, drop_last=drop_last)
        sampler.set_epoch(3)
        shards = dist.all_gather_object(list(sampler))
        assert len({len(s) for s in shards}) == 1
        flat = [i for s in shards for i in s]
        if drop_last:
            assert len(set(flat)) == len(flat) == 23 - 23 % dist.get_world_size()
        else:
            assert set(flat) == set(range(23))


def test_rank_seeds_differ_across_ranks():
    seeds = dist.all_gather_object(dist.rank_seed(0, 5))
    assert len(set(seeds)) == dist.get_world_size()


def test_barrier_and_local_rank():
    dist.barrier()
    local = dist.all_gather_object(dist.get_local_rank())
    assert local == list(range(dist.get_world_size()))     # one machine: local rank = rank
