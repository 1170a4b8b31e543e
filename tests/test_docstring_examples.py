"""The ``>>>`` examples in the docstrings of minigrad and models run, and give what they say.

Every module of ``minigrad/`` and ``models/`` is searched with ``doctest.DocTestFinder``;
each docstring that holds examples is one test case, run on the NumPy backend. The
examples print shapes, exact values (zeros, ones, padding) or rounded ones, so that
they hold on every machine. A second test requires an example in the docstring of
every layer of ``minigrad.nn``, of the sequence-to-sequence models and of GPT and
BERT, so that a new layer cannot come without one.
"""
import doctest
import importlib
import inspect
import os
import pkgutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)                  # models/ is beside the package, not installed

import minigrad as mg  # noqa: E402
from models.bert import BERT  # noqa: E402
from models.gpt import GPT  # noqa: E402
from models.seq2seq import RNNSeq2Seq  # noqa: E402
from models.transformer import TransformerSeq2Seq  # noqa: E402

#: Modules that need what a plain CPU install lacks (MPI) are searched only where they import.
OPTIONAL = {"minigrad.distributed"}


def module_names():
    names = []
    for package in ("minigrad", "models"):
        root = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
            names.append(info.name)
    return sorted(names)


def docstring_tests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in module_names():
        try:
            module = importlib.import_module(name)
        except ImportError:
            if name in OPTIONAL:
                continue
            raise
        for test in finder.find(module):
            if test.examples and test.name.startswith(name):
                found.append(test)
    return sorted(found, key=lambda t: t.name)


DOCTESTS = docstring_tests()


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_example_runs_as_written(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    output = []
    with mg.use_backend("numpy"):
        mg.manual_seed(0)
        result = runner.run(test, out=output.append)
    assert result.failed == 0, "".join(output)


def layers():
    """Every Module class ``minigrad.nn`` exports, the seq2seq models, GPT and BERT."""
    classes = [obj for _, obj in sorted(vars(mg.nn).items())
               if inspect.isclass(obj) and issubclass(obj, mg.nn.Module)]
    return classes + [RNNSeq2Seq, TransformerSeq2Seq, GPT, BERT]


def test_the_examples_are_found():
    names = {t.name for t in DOCTESTS}
    assert "minigrad.nn.linear.Linear" in names and "models.seq2seq.RNNSeq2Seq" in names, sorted(names)


@pytest.mark.parametrize("layer", layers(), ids=lambda c: c.__name__)
def test_every_layer_has_an_example(layer):
    examples = doctest.DocTestParser().get_examples(layer.__doc__ or "")
    assert examples, f"{layer.__module__}.{layer.__name__}: its docstring has no >>> example"
