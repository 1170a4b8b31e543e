"""The documents name real code: docs/tour.md, the README's map, the ops' oracle table.

- every ``file.py::Name.attr`` the tour names is a file holding that class or
  function (found in its syntax tree, not imported), every bare path exists;
- every command of the tour parses: ``python train.py ...`` with train.py's own
  parser, ``python benchmarks/race.py ...`` with the race's (and the train.py flags it
  would pass), ``python -m pytest FILE -k WORD`` names a test file holding a test of
  that name; a command of any other kind fails the test, so none goes unchecked;
- the README links the tour first; every path in its file map and reading order
  exists, and every module of minigrad/ and models/ is on the map;
- every row of the fused-op table in minigrad/ops/__init__.py names a real op and a
  real oracle, the fused op's module docstring names the oracle (and its file, when it
  lives in another), and the oracle's docstring names the fused op.
"""
import ast
import os
import re
import shlex
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, ROOT)

import race  # noqa: E402
import train  # noqa: E402

TOUR = os.path.join(ROOT, "docs", "tour.md")
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def code_spans(text):
    return re.findall(r"`([^`\n]+)`", text)


def bash_lines(text):
    """The lines of the ```bash blocks of a markdown text."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line for line in block.splitlines() if line.strip()]
    return lines


def defines(path, qualname):
    """Whether the Python file ``path`` defines ``qualname`` (``Class.method``, ``function``,
    ``CONSTANT``) at its top level or inside the named classes."""
    body = ast.parse(read(os.path.join(ROOT, path))).body
    for part in qualname.split("."):
        found = None
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == part:
                found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        body = getattr(found, "body", [])
    return True


# -- the tour ------------------------------------------------------------------------

TOUR_TEXT = read(TOUR)
NAMED = sorted({s for s in code_spans(TOUR_TEXT) if re.fullmatch(r"[\w/.]+\.py::[\w.]+", s)})
PATHS = sorted({s for s in code_spans(TOUR_TEXT) if re.fullmatch(r"[\w.]+/[\w/.]*", s)})


def test_the_tour_names_functions_and_files():
    assert len(NAMED) >= 30 and len(PATHS) >= 2, (NAMED, PATHS)


@pytest.mark.parametrize("named", NAMED)
def test_every_function_the_tour_names_exists(named):
    path, qualname = named.split("::")
    assert os.path.isfile(os.path.join(ROOT, path)), f"{path} does not exist"
    assert defines(path, qualname), f"{path} defines no {qualname}"


@pytest.mark.parametrize("path", PATHS)
def test_every_file_the_tour_names_exists(path):
    assert os.path.exists(os.path.join(ROOT, path)), path


def check_train_flags(argv):
    """train.py's parser accepts ``argv`` (argparse exits on a bad flag)."""
    try:
        train.parse_args(argv)
    except SystemExit as e:
        if e.code != 0:                                 # --help exits 0
            pytest.fail(f"train.py refuses {' '.join(argv)!r} (exit {e.code})")


def check_command(line):
    words = shlex.split(line, comments=True)
    if words[:2] == ["python", "train.py"]:
        check_train_flags(words[2:])
    elif words[:2] == ["python", "benchmarks/race.py"]:
        try:
            args = race.parse_args(words[2:])
        except SystemExit as e:
            pytest.fail(f"race.py refuses {line!r} (exit {e.code})")
        for name in args.names:
            check_train_flags(race.base_flags(args) + race.CONTESTANTS[name][1])
    elif words[:3] == ["python", "-m", "pytest"]:
        path = words[3]
        source = read(os.path.join(ROOT, path))
        if "-k" in words:
            word = words[words.index("-k") + 1]
            tests = re.findall(r"^def (test_\w+)", source, flags=re.M)
            assert any(word in name for name in tests), f"no test of {path} matches -k {word}"
    else:
        pytest.fail(f"a tour command of an unchecked kind: {line!r}")


TOUR_COMMANDS = bash_lines(TOUR_TEXT)


@pytest.mark.parametrize("line", TOUR_COMMANDS)
def test_every_command_of_the_tour_parses(line):
    check_command(line)


def test_every_stop_has_something_to_read_and_a_command():
    stops = re.split(r"^## ", TOUR_TEXT, flags=re.M)[1:]
    assert len(stops) == 10
    for stop in stops:
        title = stop.splitlines()[0]
        assert "- Read:" in stop and "```bash" in stop, title


def test_a_bad_flag_in_a_command_is_caught():
    with pytest.raises(pytest.fail.Exception):
        check_command("python train.py --model gru --attention bahdanau --no-such-flag")
    with pytest.raises(pytest.fail.Exception):
        check_command("python benchmarks/race.py --only gru-none,nonesuch")


# -- the README ----------------------------------------------------------------------

README_TEXT = read(README)


def test_the_readme_links_the_tour_first():
    first = re.search(r"\]\(([^)]+)\)", README_TEXT)
    assert first and first.group(1) == "docs/tour.md", first and first.group(0)


def section(text, title):
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


MAP = section(README_TEXT, "## Where things are")
MAP_PATHS = sorted({s for s in code_spans(MAP) if re.fullmatch(r"[\w.]+/[\w/.]*", s)})


@pytest.mark.parametrize("path", MAP_PATHS)
def test_every_path_of_the_readme_map_exists(path):
    assert os.path.exists(os.path.join(ROOT, path)), path


def modules():
    found = []
    for package in ("minigrad", "models"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            relative = os.path.relpath(folder, ROOT).replace(os.sep, "/")
            found += [f"{relative}/{name}" for name in files if name.endswith(".py") and name != "__init__.py"]
    return sorted(found)


@pytest.mark.parametrize("module", modules())
def test_every_module_is_on_the_readme_map(module):
    shown = set(code_spans(MAP))
    folder = module.rsplit("/", 1)[0] + "/"
    # a module is on the map by its path, or under its folder's row (minigrad/nn/, models/objectives/)
    assert module in shown or (folder in shown and folder not in ("minigrad/", "models/")), module


@pytest.mark.parametrize("line", [line for line in bash_lines(README_TEXT) if "python train.py" in line])
def test_every_train_command_of_the_readme_parses(line):
    words = shlex.split(line, comments=True)
    words = words[words.index("train.py") + 1:]
    if "<" in words:                                     # a shell redirection is not a flag
        words = words[:words.index("<")]
    check_train_flags(words)


# -- the ops' table of fused ops and oracles ---------------------------------------------

def oracle_rows():
    import minigrad.ops
    rows = []
    for line in minigrad.ops.__doc__.splitlines():
        match = re.fullmatch(r"    (nn_\w+)\s+(.+?)\s{2,}(.+)", line)
        if match:
            rows.append(match.groups())
    return rows


def test_the_oracle_table_has_every_fused_module():
    fused = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "minigrad", "ops")) if f.startswith("nn_"))
    assert sorted(row[0] for row in oracle_rows()) == fused


@pytest.mark.parametrize("module, ops, oracle", oracle_rows())
def test_each_fused_op_and_its_oracle_exist(module, ops, oracle):
    path = f"minigrad/ops/{module}.py"
    for name in re.sub(r"\(.*?\)", "", ops).replace(",", " ").split():
        assert defines(path, name), f"{path} defines no {name}"
    if oracle.startswith("the same file:"):
        where, names = path, oracle[len("the same file:"):].replace(",", " ").split()
    else:
        where, name = oracle.split()[:2]
        names = [name]
    for name in names:
        assert defines(where, name), f"{where} defines no {name} (the oracle of {module})"


def docstring_of(path, qualname):
    """The docstring of ``qualname`` (``function`` or ``Class.method``) in the file ``path``."""
    body = ast.parse(read(os.path.join(ROOT, path))).body
    node = None
    for part in qualname.split("."):
        node = next(n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == part)
        body = node.body
    return ast.get_docstring(node) or ""


@pytest.mark.parametrize("module, ops, oracle", oracle_rows())
def test_each_fused_op_and_its_oracle_name_each_other(module, ops, oracle):
    path = f"minigrad/ops/{module}.py"
    module_doc = ast.get_docstring(ast.parse(read(os.path.join(ROOT, path))))
    fused = re.sub(r"\(.*?\)", "", ops).replace(",", " ").split()
    if oracle.startswith("the same file:"):
        where, names = path, oracle[len("the same file:"):].replace(",", " ").split()
    else:
        where, names = oracle.split()[:2]
        names = [names]
        dotted = where[:-len(".py")].replace("/", ".")
        assert where in module_doc or dotted in module_doc, f"{path}'s docstring does not name {where}"
    for name in names:
        assert name.split(".")[-1] in module_doc, f"{path}'s docstring does not name its oracle {name}"
        assert any(op in docstring_of(where, name) for op in fused), \
            f"the docstring of {where}::{name} names none of its fused ops {fused}"
