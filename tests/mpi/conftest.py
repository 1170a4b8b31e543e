"""Tests that run on several MPI ranks at once (marked ``mpi``).

    mpiexec -n 2 python -m pytest tests/mpi -m mpi -p no:cacheprovider

Every rank runs the same tests in the same order, so their collectives meet. Rank 0
alone prints; the outcome of each test phase is gathered from every rank, and a
failure on any rank fails the test on rank 0 with that rank's traceback (and rank 1's
own pytest exits non-zero too, so mpiexec does). In a plain ``pytest`` (one process)
the ``mpi`` tests are skipped, with or without mpi4py installed.
"""
import os
import sys

import pytest

from minigrad import distributed as dist

SKIP_REASON = "needs several MPI ranks: mpiexec -n 2 python -m pytest tests/mpi -m mpi"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Register the marker; on ranks other than 0, send pytest's report to /dev/null.

    tryfirst: before pytest's terminal reporter is made, on ``sys.stdout``. (Run as
    ``pytest tests/mpi``, so that this conftest is read before that.)"""
    config.addinivalue_line("markers", "mpi: runs on every rank under mpiexec (skipped in one process)")
    if dist.get_world_size() > 1 and not dist.is_main():
        sys.stdout = open(os.devnull, "w")


def pytest_collection_modifyitems(config, items):
    if dist.get_world_size() > 1:
        return
    for item in items:
        if item.get_closest_marker("mpi") is not None:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail the test on every rank where it failed on any."""
    outcome = yield
    if dist.get_world_size() == 1:
        return
    report = outcome.get_result()
    texts = dist.all_gather_object(report.longreprtext if report.failed else None)
    others = [(rank, text) for rank, text in enumerate(texts)
              if text is not None and rank != dist.get_rank()]
    if others:
        sections = [f"failed on rank {rank}:\n{text}" for rank, text in others]
        if report.failed:
            sections.insert(0, f"failed on rank {dist.get_rank()}:\n{report.longreprtext}")
        report.outcome = "failed"
        report.longrepr = "\n\n".join(sections)
