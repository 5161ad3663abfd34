"""The repository's shape: no runtime import cycles, layers that point one way, a map that names every module,
no references to files users do not have.

Imports are read from the source with `ast` (nothing is imported). An import counts when it runs: at module level
or inside a function (a lazy import still closes a cycle the moment it runs); imports under `if TYPE_CHECKING:` are
for the type checker only and do not count. `from P import name` is an import of the module `P.name` when that is a
module of the project, else of `P`.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("core", "kernels", "explorer", "bench")


def project_modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `packages` (a package is its __init__.py)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(source: str, known: set[str]) -> set[str]:
    """Every module `source` imports at run time (anywhere but under `if TYPE_CHECKING:`); `known` are the project's
    modules, to tell `from package import submodule` from `from module import name`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:  # the `else:` branch of `if TYPE_CHECKING:` does run
                    visit(ast.Module(body=[stmt], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    found.add(sub if sub in known else child.module)
            visit(child)

    visit(ast.parse(source))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: (runtime_imports(path.read_text(encoding="utf-8"), known) & known) - {name}
            for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, as the cycles to report."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(cycles)


def _describe(cycles: list[list[str]], graph: dict[str, set[str]]) -> str:
    return "\n".join(" <-> ".join(c) + ": " + "; ".join(f"{a} imports {', '.join(sorted(graph[a] & set(c)))}"
                                                        for a in c) for c in cycles)


# ----------------------------------------------------------------------------- the checker itself

def test_cycle_check_finds_lazy_cycles_and_ignores_typing_only_imports(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def f():\n    from pkg import a  # lazy: still a cycle when f runs\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import D\n",
        "pkg/d.py": "import pkg.c\n",
        "pkg/e.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.f\nelse:\n    import pkg.g\n",
        "pkg/f.py": "import pkg.e\n",
        "pkg/g.py": "from pkg.e import x\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(project_modules(tmp_path, ("pkg",)))
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == set() and graph["pkg.e"] == {"pkg.g"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.e", "pkg.g"]]


# ----------------------------------------------------------------------------- the repository

def test_no_runtime_import_cycles() -> None:
    graph = import_graph(project_modules())
    assert len(graph) > 50  # the scan saw the project (it would pass vacuously on an empty tree)
    cycles = import_cycles(graph)
    assert not cycles, "runtime import cycles (give one side a one-way dependency):\n" + _describe(cycles, graph)


def test_layers_point_one_way() -> None:
    """kernels -> nothing of ours; core -> kernels only (the `sgxl explore` verb of core.cli opens the explorer);
    explorer -> core, kernels; bench may use all three. Nothing in core or kernels imports the GUI toolkit."""
    modules = project_modules()
    graph = import_graph(modules)
    allowed = {"kernels": {"kernels"}, "core": {"core", "kernels"}, "explorer": {"explorer", "core", "kernels"},
               "bench": set(PACKAGES)}
    wrong = [f"{a} -> {b}" for a, deps in graph.items() for b in sorted(deps)
             if b.split(".")[0] not in allowed[a.split(".")[0]] and not (a == "core.cli" and b == "explorer.app")]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)
    gui = [f"{name} -> {imp}" for name, path in modules.items() if name.split(".")[0] in ("core", "kernels")
           for imp in sorted(runtime_imports(path.read_text(encoding="utf-8"), set(modules)))
           if imp.split(".")[0] in ("dearpygui", "OpenGL")]
    assert not gui, f"core/kernels modules importing the GUI toolkit: {gui}"


# ----------------------------------------------------------------------------- the documentation

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
DOCS = (ARCHITECTURE, REPO / "docs" / "PAPER.md", REPO / "CONTRIBUTING.md", REPO / "README.md")
# A file path of the repository as the docs write it: `core/io/checkpoint.py`, `assets/MODEL_CARD.md`.
PATH_IN_DOC = re.compile(r"\b(?:core|kernels|explorer|bench|tests|assets|docs)/[\w./-]*\.[a-z]+\b")


def test_architecture_names_every_module() -> None:
    """docs/ARCHITECTURE.md answers "where is X" for every module: each file is named by its path."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    paths = [path.relative_to(REPO).as_posix() for path in project_modules().values()]
    missing = [p for p in paths if f"`{p}`" not in text]
    assert not missing, "docs/ARCHITECTURE.md does not name these modules (add a line to its module map):\n" + \
        "\n".join(missing)


def test_paths_in_the_docs_exist() -> None:
    """Every repository path a doc names exists, so a renamed or deleted file cannot leave the docs behind."""
    stale = []
    for doc in DOCS:
        for match in PATH_IN_DOC.finditer(doc.read_text(encoding="utf-8")):
            path = match.group(0)
            if not (REPO / path).exists():
                stale.append(f"{doc.relative_to(REPO)}: {path}")
    assert not stale, "paths named in the docs that do not exist:\n" + "\n".join(stale)


def repository_files() -> list[Path]:
    """The files of the project: tracked or new, not what git ignores (run directories, venvs, an old
    checkout under runs/ab/_src); every file under the checkout where git is not available."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(REPO.rglob("*"))
    return sorted(REPO / name for name in out.decode().split("\0") if name)


def test_code_and_docs_reference_nothing_outside_the_repository() -> None:
    """Users have the repository only: no code or doc may send them to a design file or a folder beside it.
    (Tests may read optional fixtures from beside the checkout; they skip without them.)"""
    pattern = re.compile(r"DESIGN\.md|\.\./shared|EXPLORER_NOTES\.md|OFFICIAL_FORMAT\.md")
    found = []
    for path in repository_files():
        rel = path.relative_to(REPO)
        if (not path.is_file() or path.suffix not in (".py", ".md", ".sh", ".toml") or rel.parts[0] == "tests"
                or any(part.startswith(".") for part in rel.parts)):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "references to files outside the repository:\n" + "\n".join(found)
