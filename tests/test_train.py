"""train.py: it learns its built-in task, writes its metrics and weights, and an
interrupted save leaves the previous model file intact."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402  (the application beside the package)


def test_train_learns_the_spirals_and_writes_metrics_and_weights(tmp_path):
    metrics = train.main(["--steps", "400", "--out", str(tmp_path)])
    assert metrics["final_test_accuracy"] > 0.9          # chance is 1/3
    assert metrics["curve"][-1]["loss"] < metrics["curve"][0]["loss"] / 5
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["final_test_accuracy"] == metrics["final_test_accuracy"]
    weights = np.load(tmp_path / "model.npz")
    assert weights["W1"].shape == (2, 64) and weights["W2"].shape == (64, 3)
    assert weights["W1"].dtype == np.float32


def test_an_interrupted_save_keeps_the_previous_model(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    params = {"W": train.mg.Tensor(np.ones((2, 2), dtype=np.float32))}
    train.save_weights(params, str(path))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt                           # Ctrl-C in the middle of writing
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        train.save_weights({"W": train.mg.Tensor(np.zeros((2, 2), dtype=np.float32))}, str(path))
    np.testing.assert_array_equal(np.load(path)["W"], np.ones((2, 2)))
    assert os.listdir(tmp_path) == ["model.npz"]          # no temporary file left behind
