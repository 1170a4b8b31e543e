"""Real SIGKILLs: train.py killed right after its last checkpoint, while it draws a plot,
and at a random moment, then resumed, leaves exactly the files of an uninterrupted run
(tests/kill_campaign.py runs the full campaign: ``python tests/kill_campaign.py``)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kill_campaign  # noqa: E402


@pytest.mark.skipif(not hasattr(kill_campaign.signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkilled_runs_resume_to_the_uninterrupted_files(tmp_path, monkeypatch):
    monkeypatch.setattr(kill_campaign, "POINTS", {k: kill_campaign.POINTS[k] for k in ("last-checkpoint", "plots")})
    results = kill_campaign.campaign(3, seed=1, workdir=str(tmp_path), log=lambda line: None)
    assert [r[1][0] for r in results] == ["point", "point", "delay"]
    assert results[0][2] >= 1 and results[1][2] >= 1             # the chosen points were reached
    assert [r[3] for r in results] == [[], [], []]               # and resumed to identical files
