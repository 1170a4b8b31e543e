"""The built-in text corpus: Python's own documentation, read from the Python that runs it.

A language model needs a real text, and minigrad downloads nothing. Every CPython
installation carries English prose about Python:

    python-topics   the documentation topics of the standard library's ``pydoc_data`` module
                    (``help("if")``, ``help("FORMATTING")``, ...: sections of the Language
                    Reference and the Library Reference, converted to plain text when the
                    CPython release was built), in the order of their names: 359,007 characters
                    on CPython 3.11.7. ``pydoc_data.topics`` is one dict of strings and ships
                    with every installation, also without source files.
    python-docs     the docstrings of ``DOCSTRING_MODULES`` (well-documented standard-library
                    modules: module, class and function docstrings in source order), then the
                    text of python-topics: 1,017,788 characters on CPython 3.11.7. The
                    docstrings are read from the ``.py`` files by ``ast`` (no module is
                    imported), so an installation without the standard library's source files
                    (rare: some embedded or "slim" builds) cannot build it: a ``DataError``.
                    A module of the list that a Python version no longer has is left out.

The reference prose comes last in python-docs so that a contiguous split (``split_text``)
validates and tests on it (on CPython 3.11.7 the last 10% are the topics "types" .. "yield").

Light cleaning, the same for both: heading underlines and table rules ("*****", "=====",
"+-----+-----+") are removed, reST's double back-quotes ``x`` become "x" as in the topics, a
"::" that opens a code example becomes ":", trailing spaces are removed, and runs of blank
lines become one blank line. Documents (a topic, a docstring) are separated by one blank line.
No text is there twice, so that none sits in both the training and the test part of a split:
a topic whose whole text is part of another is left out (the topic "compound" holds "if",
"while", "try", ...: 22 of the 79 topics go), and a docstring repeated word for word is kept
once.

Determinism: the text depends only on the Python release. Every machine running the same
CPython release (say 3.11.7) gets the same string; patch releases may change a few
docstrings and topics, minor versions more (``sys.version`` names the release; record a
hash of the text with a run if results must be compared across machines).

Licence: the Python documentation and source code are copyright the Python Software
Foundation and distributed under the PSF License Agreement (PSF-2.0; the code examples of the
documentation also under the Zero-Clause BSD licence). minigrad does not redistribute the text:
it reads it from the user's own Python installation.
"""
import ast
import functools
import os
import re
import sysconfig

from minigrad.data.vocab import DataError

__all__ = ["BUILTIN_CORPORA", "builtin_corpus", "DOCSTRING_MODULES"]

BUILTIN_CORPORA = {
    "python-topics": "the standard library's documentation topics (pydoc_data), ~0.36 M characters",
    "python-docs": "docstrings of standard-library modules, then python-topics, ~1.02 M characters",
}

# Standard-library modules with much prose in their docstrings, in the order they are read.
# None of them is split out of the standard library by Linux distributions (as tkinter and
# idlelib are); a module that a later Python removes is skipped (see the module docstring).
DOCSTRING_MODULES = (
    "_pydecimal", "typing", "doctest", "difflib", "inspect", "ipaddress", "_pyio",
    "statistics", "threading", "smtplib", "configparser", "codecs", "tarfile", "pdb", "os",
    "subprocess", "shutil", "imaplib", "optparse", "ssl", "socketserver", "collections",
    "pydoc", "traceback", "argparse", "ftplib", "json", "mailbox", "zipfile", "bdb", "socket",
    "enum", "pickletools", "ast", "pathlib", "uuid", "platform", "random", "textwrap",
    "tempfile", "functools", "fractions", "contextlib", "timeit", "fileinput", "pickle", "cmd",
    "logging", "mimetypes", "wave", "code", "poplib", "locale", "calendar", "dataclasses",
    "heapq", "weakref",
)

_RULE = re.compile(r"[-=*~^+|]{3,}")              # a heading underline or a table border


def _cleaned(document):
    """One topic or docstring with the markup noise removed (module docstring)."""
    lines = []
    for line in document.replace("``", '"').split("\n"):
        line = line.rstrip()
        if _RULE.fullmatch(line.strip()):
            continue
        if line.endswith("::"):
            line = line[:-1]                      # "For example::" -> "For example:"
        if line or (lines and lines[-1]):         # at most one blank line in a row
            lines.append(line)
    return "\n".join(lines).strip("\n")


def _topics():
    """The cleaned topics in the order of their names, without those whose whole text is part
    of another topic (of two equal ones, the first name is kept)."""
    from pydoc_data.topics import topics
    cleaned = {name: _cleaned(topics[name]) for name in sorted(topics)}
    return [text for name, text in cleaned.items()
            if not any(other != name and text in other_text and (text != other_text or other < name)
                       for other, other_text in cleaned.items())]


def _source_file(module):
    """The path of a standard-library module's source (a file or a package's __init__.py),
    or None when this Python has no such module."""
    base = os.path.join(sysconfig.get_path("stdlib"), *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _docstrings(path):
    """The docstrings of a module, its classes and its functions, in source order."""
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), filename=path)
    nodes = [node for node in ast.walk(tree)
             if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    nodes.sort(key=lambda node: getattr(node, "lineno", 0))          # the module (no lineno) first
    docs = (ast.get_docstring(node, clean=True) for node in nodes)
    return [_cleaned(doc) for doc in docs if doc and doc.strip()]


def _module_docstrings():
    if _source_file("os") is None:
        raise DataError(f"the built-in corpus 'python-docs' reads the standard library's source "
                        f"files, and this Python has none in {sysconfig.get_path('stdlib')}; "
                        f"use 'python-topics' (or --text FILE) instead")
    docs = []
    for module in DOCSTRING_MODULES:
        path = _source_file(module)
        if path is not None:
            docs += _docstrings(path)
    return docs


@functools.lru_cache(maxsize=None)
def builtin_corpus(name="python-docs"):
    """The text of the built-in corpus ``name`` (a key of ``BUILTIN_CORPORA``), read offline
    from this Python installation (module docstring: contents, size, determinism, licence)."""
    if name not in BUILTIN_CORPORA:
        raise DataError(f"unknown built-in corpus {name!r}; expected one of: "
                        f"{', '.join(BUILTIN_CORPORA)}")
    documents = _topics() if name == "python-topics" else _module_docstrings() + _topics()
    unique = dict.fromkeys(doc for doc in documents if doc)          # the first of equal ones
    return "\n\n".join(unique) + "\n"
