"""Evaluation shared out among the ranks of a data-parallel job (``mpiexec -n N``).

Each rank evaluates a contiguous share of a split's batches (``shared_out``); sums and
counts then add up over the ranks with ``distributed.all_reduce_sum`` (never a mean of
per-rank means), and decoded texts come back in batch order with
``distributed.all_gather_object``. In one process the share is every batch.
"""
import dataclasses

from minigrad import distributed as dist

__all__ = ["shared_out", "shard_rows"]


def shared_out(batches):
    """This rank's contiguous share of ``batches`` (a list, or an iterable: listed first)."""
    batches = list(batches)
    return batches[dist.batch_slice(len(batches))]


def shard_rows(batch, rank, world_size):
    """This rank's rows of a training batch: every array field of the batch (a
    dataclass of arrays whose first axis is the batch) cut by ``batch_slice``; None
    when the batch has fewer rows than there are ranks and this one gets none (it
    still takes part in the gradients' all-reduce, adding zeros)."""
    rows = dist.batch_slice(len(getattr(batch, dataclasses.fields(batch)[0].name)), rank, world_size)
    if rows.stop == rows.start:
        return None
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[rows] for f in dataclasses.fields(batch)})
