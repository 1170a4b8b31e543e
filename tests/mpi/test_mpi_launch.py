"""Whole MPI jobs launched from one pytest process: ``mpiexec -n 2 python -c ...``.

Not marked ``mpi``: these run in a plain ``pytest`` wherever mpi4py and an
``mpiexec`` are installed (``pip install -e ".[mpi]"``), and skip elsewhere. The
``mpiexec`` used is the one installed beside this Python (the ``mpich`` wheel's),
which is the MPI that mpi4py loads."""
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from minigrad import distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 30


def mpi4py_installed():
    try:
        import mpi4py  # noqa: F401  (the package only: MPI starts with mpi4py.MPI)
    except ImportError:
        return False
    return True


def find_mpiexec():
    beside_python = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    return beside_python if os.path.exists(beside_python) else shutil.which("mpiexec")


pytestmark = [
    pytest.mark.skipif(not mpi4py_installed(),
                       reason='mpi4py is not installed: pip install -e ".[mpi]"'),
    pytest.mark.skipif(find_mpiexec() is None, reason='no mpiexec: pip install -e ".[mpi]"'),
    pytest.mark.skipif(dist.get_world_size() > 1, reason="launches mpiexec itself: run it in one process"),
]


def launch(code, n=2):
    """Run ``code`` on n ranks; (exit status, stdout + stderr). Fails the test if the
    job is still running after TIMEOUT_S (and kills it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "MPI_LOCAL"))}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    job = subprocess.Popen([find_mpiexec(), "-n", str(n), sys.executable, "-c", textwrap.dedent(code)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           cwd=ROOT, start_new_session=True)
    try:
        output, _ = job.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        output, _ = job.communicate()
        pytest.fail(f"the job hung: still running after {TIMEOUT_S} s; its output:\n{output}")
    return job.returncode, output


def test_mpiexec_gives_each_rank_its_rank():
    # rank 0 alone prints what every rank says of itself: two ranks printing at once
    # could interleave their lines ("rankrank 1 of 2")
    status, output = launch("""
        from minigrad import distributed as dist
        ranks = dist.all_gather_object((dist.get_rank(), dist.get_world_size()))
        if dist.is_main():
            print("ranks", ranks)
    """)
    assert status == 0, output
    assert "ranks [(0, 2), (1, 2)]" in output


def test_a_failing_rank_stops_the_job_with_one_message():
    """Rank 1 raises while rank 0 waits in a barrier: without the abort rank 0 would
    wait forever."""
    status, output = launch("""
        from minigrad import distributed as dist
        dist.init()
        if dist.get_rank() == 1:
            raise ValueError("deliberate failure on rank 1")
        dist.barrier()
        print("rank 0 got past the barrier")
    """)
    assert status != 0, output
    assert output.count("minigrad.distributed: rank 1 of 2 failed") == 1, output
    assert output.count("ValueError: deliberate failure on rank 1") == 1, output
    assert "got past the barrier" not in output
