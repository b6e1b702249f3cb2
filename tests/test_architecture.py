"""The house rules of docs/architecture.md, checked on the source: one-way layers, no cycles,
functions of a screen and modules of one idea.

Every module under ``src/cxrseg`` is parsed with :mod:`ast`; every ``import`` counts, those inside
functions and ``if TYPE_CHECKING:`` blocks included. A test runs the same checker on a small
synthetic package in ``tmp_path`` and shows it catches an upward import, a cycle and an unmarked
function-level import, so a green run here means something.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cxrseg"

#: Bottom to top. A module may import its own layer and the layers below it, never above.
#: The first matching prefix (longest first) gives a module its layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # the exception types, the argument checks, the limits on untrusted numbers and the version
    # string every layer may use
    ("base", ("cxrseg.errors", "cxrseg._version", "cxrseg.checks", "cxrseg.limits")),
    # small leaves: version checks, metrics, mask post-processing, the shipped models'
    # catalogue, quality flags
    (
        "leaves",
        (
            "cxrseg.versions",
            "cxrseg.metrics",
            "cxrseg.postprocess",
            "cxrseg.catalogue",
            "cxrseg.quality",
        ),
    ),
    ("io", ("cxrseg.io",)),
    # datasets on disk: discovery, validation, splits; prediction/reference pairing; phantoms
    (
        "data",
        (
            "cxrseg.data",
            "cxrseg.pairing",
            "cxrseg.structure_map",
            "cxrseg.phantom",
            "cxrseg.report.contact_sheet",
        ),
    ),
    # augment proper: geometry, resampling, transforms, Pipeline (no datasets written or read
    # except through data.load_case for Pipeline.sample)
    ("augment", ("cxrseg.augment",)),
    # the offline job that reads a dataset and writes augmented samples
    ("jobs", ("cxrseg.augment_offline", "cxrseg.report.inspection")),
    ("models", ("cxrseg.models", "cxrseg.losses")),
    ("training", ("cxrseg.training",)),
    ("inference", ("cxrseg.inference", "cxrseg.export", "cxrseg.pretrained")),
    ("evaluation", ("cxrseg.evaluation", "cxrseg.report")),
    # the worked example and the cross-validation, which run every stage
    ("app", ("cxrseg.demo", "cxrseg.crossval")),
    # the command line, the ``python -m`` entry and the package facade with its lazy names
    ("cli", ("cxrseg.cli", "cxrseg.__main__", "cxrseg")),
)

#: A function-level import is allowed only with this comment on its line or the line above.
LAZY_MARKER = "# lazy: start-up time"

#: Known debts being paid off by issue 11; each entry must still be true (the test says when
#: one can be deleted), and nothing new may join.
KNOWN: frozenset[str] = frozenset()
KNOWN_UNMARKED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (both module names) at ``line``."""

    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool
    marked: bool


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (a package folder)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import node with (inside a function, inside ``if TYPE_CHECKING``)."""

    def walk(node: ast.AST, in_function: bool, type_only: bool) -> Iterable:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function, type_only
            function = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            checking = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
            yield from walk(child, function, checking)

    yield from walk(tree, False, False)


def _resolve(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The names a node imports, as modules or ``module.attribute`` candidates."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        stem = ".".join(base + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    return [stem] + [f"{stem}.{alias.name}" for alias in node.names]


def _marked(node: ast.stmt, lines: Sequence[str]) -> bool:
    """The lazy marker is on the import's line or above it, imports in between allowed."""
    row = node.lineno - 1
    while row >= 0:
        line = lines[row].strip()
        if LAZY_MARKER in line:
            return True
        inside_list = line.endswith((",", "("))  # a line of a parenthesised import list
        imports = line.startswith(("from ", "import ", ")"))
        if line and row < node.lineno - 1 and not imports and not inside_list:
            return False
        row -= 1
    return False


def import_edges(root: Path) -> list[Edge]:
    """Every import between modules of the package at ``root``."""
    modules = module_names(root)
    edges = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        is_package = path.name == "__init__.py"
        for node, in_function, type_only in _imports(ast.parse(source)):
            candidates = _resolve(node, name, is_package)
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            targets = [c for c in candidates[1:] if c in modules] or candidates[:1]
            if isinstance(node, ast.Import):
                targets = candidates
            marked = _marked(node, lines)
            for target in targets:
                if target in modules and target != name:
                    edges.append(Edge(name, target, node.lineno, in_function, type_only, marked))
    return edges


def layer_of(module: str, layers: Sequence[tuple[str, tuple[str, ...]]] = LAYERS) -> int:
    """Index of the module's layer: its longest matching prefix in ``layers``."""
    best, index = -1, -1
    for position, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            # a top-level name (the package itself) holds only itself, not everything under it
            nested = "." in prefix and module.startswith(prefix + ".")
            if (module == prefix or nested) and len(prefix) > best:
                best, index = len(prefix), position
    if index < 0:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")
    return index


def package_of(module: str) -> str:
    """``cxrseg.augment.maps`` -> ``cxrseg.augment``; a top-level module is its own package."""
    return ".".join(module.split(".")[:2])


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of a directed graph as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def all_cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle per strongly tangled group: remove an edge of each found cycle, look again."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    cycles = []
    while cycle := find_cycle(graph):
        cycles.append(cycle)
        graph[cycle[0]].discard(cycle[1])
    return cycles


def _short(module: str) -> str:
    """``cxrseg.augment.maps`` -> ``augment.maps`` (the package root kept as it is)."""
    return module.split(".", 1)[1] if "." in module else module


def violations(
    root: Path, layers: Sequence[tuple[str, tuple[str, ...]]] = LAYERS
) -> tuple[set[str], set[str]]:
    """(rule breaks, modules with unmarked function-level imports) of the package at ``root``.

    Rule breaks, names without the root package: ``upward: a -> b``,
    ``module cycle: a -> b -> a`` or ``package cycle: a -> b -> a``.
    """
    edges = import_edges(root)
    problems = set()
    for edge in edges:
        if layer_of(edge.target, layers) > layer_of(edge.source, layers):
            problems.add(f"upward: {_short(edge.source)} -> {_short(edge.target)}")
    runtime = [(e.source, e.target) for e in edges if not e.type_only]
    for cycle in all_cycles(runtime):
        problems.add("module cycle: " + " -> ".join(_short(c) for c in cycle))
    packages = {
        (package_of(s), package_of(t)) for s, t in runtime if package_of(s) != package_of(t)
    }
    for cycle in all_cycles(packages):
        problems.add("package cycle: " + " -> ".join(_short(c) for c in cycle))
    unmarked = {e.source for e in edges if e.in_function and not e.marked}
    return problems, unmarked


# --- the checker on a synthetic package: it must see each kind of break -------------------------

TOY_LAYERS = (("low", ("toy.low",)), ("high", ("toy.high", "toy")))


def _toy(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "toy"
    for name, text in {"__init__.py": "", "low/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    root = _toy(
        tmp_path,
        {
            "low/a.py": "import os\n",
            "low/b.py": "from toy.low import a\n",
            "high.py": f"def f():\n    {LAZY_MARKER}\n    from toy.low.b import x\n",
        },
    )
    assert violations(root, TOY_LAYERS) == (set(), set())


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    root = _toy(tmp_path, {"low/a.py": "from toy.high import thing\n", "high.py": ""})
    assert "upward: low.a -> high" in violations(root, TOY_LAYERS)[0]


def test_checker_catches_an_upward_import_hidden_in_a_function(tmp_path: Path) -> None:
    root = _toy(tmp_path, {"low/a.py": "def f():\n    from .. import high\n", "high.py": ""})
    problems, unmarked = violations(root, TOY_LAYERS)
    assert "upward: low.a -> high" in problems
    assert unmarked == {"toy.low.a"}


def test_checker_catches_module_and_package_cycles(tmp_path: Path) -> None:
    root = _toy(
        tmp_path,
        {
            "low/a.py": "from toy.low import b\n",
            "low/b.py": "def f():\n    import toy.low.a\n",
            "high.py": "from toy import other\n",
            "other.py": "import toy.high\n",
        },
    )
    problems, _ = violations(root, (("all", ("toy", "toy.low", "toy.high", "toy.other")),))
    assert "module cycle: low.a -> low.b -> low.a" in problems
    assert "package cycle: high -> other -> high" in problems


def test_type_only_imports_count_for_layers_not_cycles(tmp_path: Path) -> None:
    checking = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.high import T\n"
    root = _toy(tmp_path, {"low/a.py": checking, "high.py": "from toy.low import a\n"})
    problems, _ = violations(root, TOY_LAYERS)
    assert problems == {"upward: low.a -> high"}


# --- the rules on cxrseg itself ----------------------------------------------------------------


@pytest.fixture(scope="module")
def found() -> tuple[set[str], set[str]]:
    return violations(SRC)


def test_every_module_has_a_layer() -> None:
    for name in module_names(SRC):
        layer_of(name)


def test_layers_point_one_way_and_nothing_cycles(found: tuple[set[str], set[str]]) -> None:
    problems, _ = found
    assert sorted(problems - KNOWN) == [], "see the layer table in docs/architecture.md"
    assert sorted(KNOWN - problems) == [], "fixed: delete these from KNOWN"


def test_function_level_imports_say_they_are_for_start_up(
    found: tuple[set[str], set[str]],
) -> None:
    _, unmarked = found
    assert sorted(unmarked - KNOWN_UNMARKED) == [], f"import at the top, or mark '{LAZY_MARKER}'"
    assert sorted(KNOWN_UNMARKED - unmarked) == [], "fixed: delete these from KNOWN_UNMARKED"


def test_nothing_imports_the_cli() -> None:
    importers = {
        e.source
        for e in import_edges(SRC)
        if e.target.startswith("cxrseg.cli") and not e.source.startswith("cxrseg.cli")
    }
    assert importers <= {"cxrseg.__main__"}


# --- sizes: a function is a screen, a module one idea ----------------------------------------

MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450


def function_lengths(root: Path) -> dict[str, int]:
    """``module:function`` -> lines of its body (docstring included, signature not), every
    function and method of the package at ``root``.

    The signature is left out so that a command with many declared options (Typer) is not
    counted as logic.
    """
    lengths = {}
    for name, path in module_names(root).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{name}:{node.name}:{node.lineno}"
                lengths[key] = node.end_lineno - node.body[0].lineno + 1  # type: ignore[operator]
    return lengths


def test_the_length_checker_measures_bodies(tmp_path: Path) -> None:
    root = _toy(tmp_path, {"low/a.py": "def f(\n    x,\n):\n    y = x\n    return y\n"})
    assert function_lengths(root) == {"toy.low.a:f:1": 2}


def test_no_function_is_longer_than_a_screen() -> None:
    long = {k: n for k, n in function_lengths(SRC).items() if n > MAX_FUNCTION_LINES}
    assert long == {}, f"split these into named phases (<= {MAX_FUNCTION_LINES} lines)"


def test_no_module_holds_more_than_one_idea() -> None:
    modules = module_names(SRC).items()
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules}
    big = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert big == {}, f"split these modules (<= {MAX_MODULE_LINES} lines)"
