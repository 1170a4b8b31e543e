"""Test configuration: the strict backend, the GPU marker, hypothesis profiles.

Every op test runs on three backends (see ``helpers.BACKENDS``):
  numpy   the CPU backend users get;
  strict  NumPy arrays that refuse implicit NumPy conversion, as CuPy's do
          (``strict_backend.py``): the CPU suite's stand-in for the GPU;
  cupy    the real thing, marked ``gpu``: run where a GPU is visible, skipped elsewhere.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

import minigrad.backend as backend
from helpers import GRADCHECKS
from strict_backend import make_strict_backend

backend.register_backend("strict", make_strict_backend)
backend.backend_by_name("strict")

settings.register_profile(
    "default", deadline=None, max_examples=20, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _cupy_unavailable_reason():
    try:
        backend.backend_by_name("cupy")
    except backend.BackendError as error:
        return str(error)
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU (skipped without one)")


def pytest_collection_modifyitems(config, items):
    reason = _cupy_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"no GPU backend: {reason}")
    for item in items:
        if item.get_closest_marker("gpu") is not None:     # not "gpu" in keywords: a directory named gpu is one
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"gradient checks run: {GRADCHECKS['calls']} calls of minigrad.gradcheck "
        f"({GRADCHECKS['inputs']} inputs checked)"
    )
